// libFuzzer target for what a Psiphon server says back: the psiphon-handshake reply and the
// psiphon-connected reply (docs/protocol.md §5), which psi-connect parses from a hostile server's
// SSH_MSG_REQUEST_SUCCESS. Nothing may crash; anything but a JSON object is an Error; what a
// reply yields holds only strings it carried.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "connect/psiphon_api.hpp"
#include "core/error.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "psiphon_api_fuzz: %s\n", what);
    std::abort();
}

// A reply that is no handshake reply, or no connected reply, is refused: the right answer.
void check_handshake_reply(std::string_view reply) {
    psi::connect::HandshakeResponse response;
    try {
        response = psi::connect::parse_handshake_response(reply);
    } catch (const psi::Error&) {
        return;
    }
    std::size_t carried =
        response.client_region.size() + response.server_timestamp.size() + response.upgrade_client_version.size();
    for (const auto& url : response.homepages) carried += url.size();
    for (const auto& line : response.encoded_server_list) carried += line.size();
    if (carried > reply.size()) fail("the parsed reply holds more than the reply carried");
}

void check_connected_reply(std::string_view reply) {
    std::string timestamp;
    try {
        timestamp = psi::connect::parse_connected_timestamp(reply);
    } catch (const psi::Error&) {
        return;
    }
    if (timestamp.size() > reply.size()) fail("a timestamp longer than the reply");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view reply(reinterpret_cast<const char*>(data), size);
    check_handshake_reply(reply);
    check_connected_reply(reply);
    return 0;
}
