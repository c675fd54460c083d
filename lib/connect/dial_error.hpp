// Why a dial failed, in the classes of the server memory (servers::FailureClass): what a
// transport or the SSH and Psiphon handshakes say about the server. A failure that says
// nothing about it (cancelled, no randomness, an entry psi cannot dial) stays a plain Error.
#pragma once

#include <string>

#include "core/error.hpp"
#include "servers/store.hpp"

namespace psi::connect {

class DialError : public Error {
public:
    DialError(servers::FailureClass failure, const std::string& message) : Error(message), failure_(failure) {}
    servers::FailureClass failure() const { return failure_; }

private:
    servers::FailureClass failure_;
};

// The class of a TCP connect()'s errno: unreachable, refused or timeout.
servers::FailureClass failure_of_errno(int error_number);

// The class of what libssh said went wrong after TCP stood (a reset, a timeout, or else the
// SSH handshake itself).
servers::FailureClass failure_of_ssh_error(const std::string& libssh_message);

}  // namespace psi::connect
