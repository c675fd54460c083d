// libFuzzer target for the SOCKS5 parsers (RFC 1928): the input is read as a greeting, a request
// and a UDP datagram (the server's side), and as a method choice and a reply (the client's side).
// Nothing may crash; a complete message never claims more bytes than it was given, is preceded
// by prefixes that only need more, and comes back byte for byte from the encoders.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "proxy/socks5.hpp"

namespace {

using namespace psi::proxy;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "socks5_fuzz: %s\n", what);
    std::abort();
}

void check_greeting(std::string_view input) {
    const auto parsed = parse_greeting(input);
    if (parsed.status != ParseStatus::complete) return;
    if (parsed.consumed > input.size() || parsed.consumed < 3) fail("greeting: consumed out of range");
    if (parse_greeting(input.substr(0, parsed.consumed - 1)).status != ParseStatus::need_more)
        fail("greeting: a shorter prefix does not need more");
}

void check_request(std::string_view input) {
    const auto parsed = parse_request(input);
    if (parsed.status == ParseStatus::malformed) {
        if (parsed.error != SocksReply::general_failure && parsed.error != SocksReply::command_not_supported &&
            parsed.error != SocksReply::address_type_not_supported)
            fail("request: unexpected reply code");
        return;
    }
    if (parsed.status != ParseStatus::complete) return;
    if (parsed.consumed > input.size()) fail("request: consumed more than given");
    if (parse_request(input.substr(0, parsed.consumed - 1)).status != ParseStatus::need_more)
        fail("request: a shorter prefix does not need more");
    std::string encoded{5, static_cast<char>(parsed.message.command), 0};
    encoded += encode_address(parsed.message.destination);
    if (encoded != input.substr(0, parsed.consumed)) fail("request: re-encoding differs from the input");
    const auto again = parse_request(encoded);
    if (again.status != ParseStatus::complete || again.consumed != encoded.size() ||
        again.message.command != parsed.message.command ||
        again.message.destination.type != parsed.message.destination.type ||
        again.message.destination.host != parsed.message.destination.host ||
        again.message.destination.port != parsed.message.destination.port)
        fail("request: re-parse differs");
    if (request_reply(SocksReply::succeeded, parsed.message.destination).substr(3) != encoded.substr(3))
        fail("request: reply address differs");
}

void check_udp_datagram(std::string_view input) {
    const auto datagram = parse_udp_datagram(input);
    if (!datagram) return;
    const std::string encoded = encode_udp_datagram(*datagram);
    if (encoded != input) fail("udp: re-encoding differs from the input");
    const auto again = parse_udp_datagram(encoded);
    if (!again || again->destination.host != datagram->destination.host ||
        again->destination.port != datagram->destination.port || again->payload != datagram->payload)
        fail("udp: re-parse differs");
}

void check_method_choice(std::string_view input) {
    const auto parsed = parse_method_choice(input);
    if (parsed.status != ParseStatus::complete) return;
    if (parsed.consumed > input.size()) fail("method choice: consumed more than given");
    if (parsed.consumed != 2 || input[0] != 5 || input[1] != 0) fail("method choice: accepted something else");
    if (parse_method_choice(input.substr(0, parsed.consumed - 1)).status != ParseStatus::need_more)
        fail("method choice: a shorter prefix does not need more");
}

void check_reply(std::string_view input) {
    const auto parsed = parse_reply(input);
    if (parsed.status != ParseStatus::complete) return;
    if (parsed.consumed > input.size()) fail("reply: consumed more than given");
    if (parsed.consumed < 8) fail("reply: shorter than the shortest reply");
    if (parse_reply(input.substr(0, parsed.consumed - 1)).status != ParseStatus::need_more)
        fail("reply: a shorter prefix does not need more");
    if (reply_name(parsed.message.reply) == nullptr) fail("reply: no name");
    // The server's encoder writes the same layout: what parsed must come back byte for byte.
    if (request_reply(parsed.message.reply, parsed.message.bound) != input.substr(0, parsed.consumed))
        fail("reply: re-encoding differs from the input");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    try {
        check_greeting(input);
        check_request(input);
        check_udp_datagram(input);
        check_method_choice(input);
        check_reply(input);
    } catch (const psi::Error& error) {
        // Parsed addresses must always encode again.
        std::fprintf(stderr, "socks5_fuzz: %s\n", error.what());
        std::abort();
    }
    return 0;
}
