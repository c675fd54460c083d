// The one error type of psi: a message a person can act on, and the exit status it maps to.
#pragma once

#include <stdexcept>
#include <string>

namespace psi {

// Exit statuses shared by every program; each man page lists the ones its program uses.
namespace exit_status {
inline constexpr int ok = 0;
inline constexpr int failure = 1;     // the operation failed; nothing was changed
inline constexpr int usage = 2;       // bad command line or configuration
inline constexpr int not_secure = 3;  // state differs from what it must be (status, verify)
}  // namespace exit_status

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, int exit_code = exit_status::failure)
        : std::runtime_error(message), exit_code_(exit_code) {}
    int exit_code() const { return exit_code_; }

private:
    int exit_code_;
};

// "what: strerror(errno)" as an Error, for failed system calls.
[[noreturn]] void throw_system_error(const std::string& what, int error_number);

}  // namespace psi
