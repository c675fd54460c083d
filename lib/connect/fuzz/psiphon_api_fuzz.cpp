// libFuzzer target for what a Psiphon server says back: the psiphon-handshake reply and the
// psiphon-connected reply (PROTOCOL.md §5), which psi-connect parses from a hostile server's
// SSH_MSG_REQUEST_SUCCESS. Nothing may crash; anything but a JSON object is an Error; what a
// reply yields holds only strings it carried.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "connect/psiphon_api.hpp"
#include "core/error.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "psiphon_api_fuzz: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view reply(reinterpret_cast<const char*>(data), size);
    try {
        const psi::connect::HandshakeResponse response = psi::connect::parse_handshake_response(reply);
        std::size_t carried = response.client_region.size() + response.server_timestamp.size() +
                              response.upgrade_client_version.size();
        for (const auto& url : response.homepages) carried += url.size();
        for (const auto& line : response.encoded_server_list) carried += line.size();
        if (carried > size) fail("the parsed reply holds more than the reply carried");
    } catch (const psi::Error&) {
    }
    try {
        if (psi::connect::parse_connected_timestamp(reply).size() > size) fail("a timestamp longer than the reply");
    } catch (const psi::Error&) {
    }
    return 0;
}
