#include "core/error.hpp"

#include <cstring>

namespace psi {

void throw_system_error(const std::string& what, int error_number) {
    throw Error(what + ": " + std::strerror(error_number));
}

}  // namespace psi
