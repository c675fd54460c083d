// libFuzzer target for the authenticated package reader (docs/protocol.md §2.2): any bytes, as a
// downloaded remote list would be. Nothing may crash or grow past the limit; a package is only
// ever accepted when it is signed by the key below, which the fuzzer cannot forge.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "servers/auth_package.hpp"

namespace {

// A real RSA-2048 SubjectPublicKeyInfo, base64 (generated once for this target).
const std::string public_key =
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAq7FRXhjswAr2ZaoaDi4/NaL8qu6Pr6nQLH5o3me6PO+L"
    "WjQuAJIlPcAMqwFsBBc1x2cmMY2gk6rbAIt/2gAGah73wYH/FcdkAYj71pma3/wOsCAGmpnBcV8mHVTBkUYmWRWo"
    "P4cEeIrBUKJwTpz3l640zLp4uBqNN7uJEvAFJ4M53/9b/RQgJLDBOo91tAPHCz6mN2yiL4byK/tBfUk6LNNn6q5U"
    "1M91hrJqHmSP/arNN+EDEgSLHF+loZcIMQzEY+CeWR8BeBGzEXNre11L++oI3xiWLU7L49wwM4JcJi89grS7elwg"
    "sL01yPSMnuEksIRvxwWF2BMlrNVKM99G2QIDAQAB";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        psi::servers::open_authenticated_package(std::string_view(reinterpret_cast<const char*>(data), size),
                                                 public_key, psi::servers::PackageLimits{1u << 20});
    } catch (const psi::Error&) {
        return 0;  // a package that does not open is refused: the right answer
    }
    return 0;
}
