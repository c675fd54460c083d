// libFuzzer target for the udpgw frame parser (docs/protocol.md §6.2): the input is read as a stream of
// frames on an IPv4 and on an IPv6 connection. Nothing may crash; a complete frame takes exactly
// 2 + its size field, stays within the limits, and encodes back to the same bytes (but for the
// IPv6 flag, which psiphond leaves out downstream and the encoder always writes).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "proxy/udpgw.hpp"

namespace {

using namespace psi::proxy;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "udpgw_fuzz: %s\n", what);
    std::abort();
}

void check_frame(std::string_view frame, const UdpgwMessage& message) {
    if (peek_udpgw_connection_id(frame) != message.connection_id) fail("peek disagrees with parse");
    if (message.flags & udpgw_flags::keepalive) {
        if (!message.address.empty() || !message.payload.empty()) fail("keepalive with an address or payload");
        return;
    }
    if (message.payload.size() > udpgw_max_payload) fail("payload over the limit");
    const std::string encoded = encode_udpgw(message);
    if (encoded.size() != frame.size() || encoded.substr(0, 2) != frame.substr(0, 2) ||
        encoded.substr(3) != frame.substr(3) ||
        static_cast<std::uint8_t>(encoded.at(2)) != (message.flags | (message.is_ipv6 ? udpgw_flags::ipv6 : 0)))
        fail("re-encoding differs from the input");
    const auto again = parse_udpgw(encoded, false);
    if (again.status != ParseStatus::complete || again.consumed != encoded.size() ||
        again.message.is_ipv6 != message.is_ipv6 || again.message.connection_id != message.connection_id ||
        again.message.address != message.address || again.message.port != message.port ||
        again.message.payload != message.payload)
        fail("re-parse differs");
}

void check_stream(std::string_view input, bool is_ipv6_connection) {
    while (!input.empty()) {
        const auto parsed = parse_udpgw(input, is_ipv6_connection);
        if (parsed.status != ParseStatus::complete) return;
        if (parsed.consumed > input.size() || parsed.consumed < 5) fail("consumed out of range");
        const std::size_t size_field =
            static_cast<std::uint8_t>(input.at(0)) | static_cast<std::uint8_t>(input.at(1)) << 8;
        if (parsed.consumed != 2 + size_field) fail("consumed is not 2 + size");
        if (parse_udpgw(input.substr(0, parsed.consumed - 1), is_ipv6_connection).status != ParseStatus::need_more)
            fail("a shorter prefix does not need more");
        check_frame(input.substr(0, parsed.consumed), parsed.message);
        input.remove_prefix(parsed.consumed);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        check_stream(input, false);
        check_stream(input, true);
    } catch (const psi::Error& error) {
        // Every parsed frame must encode again.
        std::fprintf(stderr, "udpgw_fuzz: %s\n", error.what());
        std::abort();
    }
    return 0;
}
