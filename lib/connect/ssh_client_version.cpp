#include "connect/ssh_client_version.hpp"

#include <openssl/rand.h>

#include "core/error.hpp"

namespace psi::connect {

std::string random_ssh_client_version() {
    unsigned char bytes[2];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw Error("no randomness for the SSH client version");
    return "SSH-2.0-OpenSSH_" + std::to_string(7 + bytes[0] % 2) + "." + std::to_string(bytes[1] % 10);
}

}  // namespace psi::connect
