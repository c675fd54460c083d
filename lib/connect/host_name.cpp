#include "connect/host_name.hpp"

#include <openssl/rand.h>

#include "core/error.hpp"

namespace psi::connect {

std::string random_host_name() {
    unsigned char random[17];
    if (RAND_bytes(random, sizeof random) != 1) throw Error("no randomness for a host name");
    const std::size_t length = 4 + random[0] % 12;
    std::string name;
    for (std::size_t i = 0; i < length; ++i) name += static_cast<char>('a' + random[1 + i] % 26);
    constexpr const char* tops[] = {".com", ".net", ".org"};
    return name + tops[random[16] % 3];
}

}  // namespace psi::connect
