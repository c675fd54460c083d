#include "connect/dial_error.hpp"

#include <cerrno>

namespace psi::connect {

servers::FailureClass failure_of_errno(int error_number) {
    switch (error_number) {
        case ENETUNREACH:
        case EHOSTUNREACH:
        case ENETDOWN:
        case EHOSTDOWN:
            return servers::FailureClass::unreachable;
        case ECONNREFUSED:
        case ECONNRESET:
        case ECONNABORTED:
        case EPIPE:
            return servers::FailureClass::refused;
        default:
            return servers::FailureClass::timeout;
    }
}

servers::FailureClass failure_of_ssh_error(const std::string& libssh_message) {
    const auto says = [&](const char* words) { return libssh_message.find(words) != std::string::npos; };
    if (says("imeout") || says("timed out")) return servers::FailureClass::timeout;
    if (says("reset") || says("refused") || says("closed") || says("Socket error")) return servers::FailureClass::refused;
    return servers::FailureClass::handshake;
}

}  // namespace psi::connect
