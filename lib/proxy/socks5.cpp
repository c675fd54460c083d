#include "proxy/socks5.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "core/byte_reader.hpp"
#include "core/error.hpp"

namespace psi::proxy {
namespace {

constexpr std::uint8_t socks_version = 5;
constexpr std::uint8_t method_no_authentication = 0x00;
constexpr std::uint8_t method_none_acceptable = 0xff;

// Control characters (C0 and DEL) in a domain name are refused: no resolver wants them, and they
// would reach logs and the server's direct-tcpip request. Other bytes pass as sent.
bool is_acceptable_domain(std::string_view domain) {
    if (domain.empty() || domain.size() > 255) return false;
    return std::none_of(domain.begin(), domain.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte < 0x20 || byte == 0x7f;
    });
}

template <int family, std::size_t size>
std::string address_text(ByteReader& reader) {
    static_assert(size == 4 || size == 16);
    std::array<std::uint8_t, size> binary;
    reader.copy_to(binary);
    char text[INET6_ADDRSTRLEN] = {};
    if (!inet_ntop(family, binary.data(), text, sizeof text)) throw_system_error("inet_ntop", errno);
    return text;
}

struct AddressOutcome {
    ParseStatus status = ParseStatus::need_more;
    SocksReply error = SocksReply::general_failure;
};

AddressOutcome malformed(SocksReply error) { return {ParseStatus::malformed, error}; }

// ATYP, ADDR, PORT, as in requests and UDP datagrams.
AddressOutcome read_address(ByteReader& reader, SocksAddress& address) {
    const std::uint8_t type = reader.u8();
    if (reader.is_short()) return {};
    switch (type) {
        case static_cast<std::uint8_t>(AddressType::ipv4): {
            ByteReader raw = reader.sub(4);
            if (reader.is_short()) return {};
            address.type = AddressType::ipv4;
            address.host = address_text<AF_INET, 4>(raw);
            break;
        }
        case static_cast<std::uint8_t>(AddressType::ipv6): {
            ByteReader raw = reader.sub(16);
            if (reader.is_short()) return {};
            address.type = AddressType::ipv6;
            address.host = address_text<AF_INET6, 16>(raw);
            break;
        }
        case static_cast<std::uint8_t>(AddressType::domain): {
            const std::uint8_t length = reader.u8();
            if (reader.is_short()) return {};
            if (length == 0) return malformed(SocksReply::general_failure);
            const std::string_view domain = reader.take_text(length);
            if (reader.is_short()) return {};
            if (!is_acceptable_domain(domain)) return malformed(SocksReply::general_failure);
            address.type = AddressType::domain;
            address.host = std::string(domain);
            break;
        }
        default:
            return malformed(SocksReply::address_type_not_supported);
    }
    const std::uint16_t port = reader.u16();
    if (reader.is_short()) return {};
    address.port = port;
    return {ParseStatus::complete};
}

template <class Message>
Parsed<Message> malformed_message(SocksReply error) {
    Parsed<Message> parsed;
    parsed.status = ParseStatus::malformed;
    parsed.error = error;
    return parsed;
}

// An empty host is the unspecified address: a default SocksAddress encodes as 0.0.0.0:0.
template <int family, std::size_t size>
std::string address_binary(const std::string& host) {
    if (host.empty()) return std::string(size, '\0');
    unsigned char binary[size];
    if (inet_pton(family, host.c_str(), binary) != 1)
        throw Error("SOCKS5: '" + host + "' is not an IPv" + (size == 4 ? "4" : "6") + " address");
    return std::string(reinterpret_cast<const char*>(binary), size);
}

}  // namespace

Parsed<Greeting> parse_greeting(std::string_view bytes) {
    ByteReader reader(bytes);
    Parsed<Greeting> parsed;
    const std::uint8_t version = reader.u8();
    if (reader.is_short()) return parsed;
    if (version != socks_version) return malformed_message<Greeting>(SocksReply::general_failure);
    const std::uint8_t method_count = reader.u8();
    if (reader.is_short()) return parsed;
    if (method_count == 0) return malformed_message<Greeting>(SocksReply::general_failure);
    const auto methods = reader.take(method_count);
    if (reader.is_short()) return parsed;
    parsed.status = ParseStatus::complete;
    parsed.consumed = reader.consumed();
    parsed.message.offers_no_authentication = std::ranges::find(methods, method_no_authentication) != methods.end();
    return parsed;
}

std::string greeting_reply(bool is_accepted) {
    return {static_cast<char>(socks_version),
            static_cast<char>(is_accepted ? method_no_authentication : method_none_acceptable)};
}

// BIND is a command RFC 1928 defines, so it parses; psi-connect answers it with reply 7.
Parsed<SocksRequest> parse_request(std::string_view bytes) {
    ByteReader reader(bytes);
    Parsed<SocksRequest> parsed;
    const std::uint8_t version = reader.u8();
    if (reader.is_short()) return parsed;
    if (version != socks_version) return malformed_message<SocksRequest>(SocksReply::general_failure);
    const std::uint8_t command = reader.u8();
    if (reader.is_short()) return parsed;
    if (command != static_cast<std::uint8_t>(SocksCommand::connect) &&
        command != static_cast<std::uint8_t>(SocksCommand::bind) &&
        command != static_cast<std::uint8_t>(SocksCommand::udp_associate))
        return malformed_message<SocksRequest>(SocksReply::command_not_supported);
    const std::uint8_t reserved = reader.u8();
    if (reader.is_short()) return parsed;
    if (reserved != 0) return malformed_message<SocksRequest>(SocksReply::general_failure);
    const AddressOutcome address = read_address(reader, parsed.message.destination);
    if (address.status == ParseStatus::malformed) return malformed_message<SocksRequest>(address.error);
    if (address.status == ParseStatus::need_more) return Parsed<SocksRequest>{};
    parsed.status = ParseStatus::complete;
    parsed.consumed = reader.consumed();
    parsed.message.command = static_cast<SocksCommand>(command);
    return parsed;
}

std::string request_reply(SocksReply reply, const SocksAddress& bound) {
    std::string bytes{static_cast<char>(socks_version), static_cast<char>(reply), '\0'};
    return bytes + encode_address(bound);
}

std::optional<UdpDatagram> parse_udp_datagram(std::string_view bytes) {
    ByteReader reader(bytes);
    const std::uint16_t reserved = reader.u16();
    const std::uint8_t fragment = reader.u8();
    if (reader.is_short() || reserved != 0 || fragment != 0) return std::nullopt;
    UdpDatagram datagram;
    if (read_address(reader, datagram.destination).status != ParseStatus::complete) return std::nullopt;
    datagram.payload = std::string(reader.take_rest_text());
    return datagram;
}

std::string encode_udp_datagram(const UdpDatagram& datagram) {
    return std::string(3, '\0') + encode_address(datagram.destination) + datagram.payload;
}

std::string encode_address(const SocksAddress& address) {
    std::string bytes(1, static_cast<char>(address.type));
    switch (address.type) {
        case AddressType::ipv4:
            bytes += address_binary<AF_INET, 4>(address.host);
            break;
        case AddressType::ipv6:
            bytes += address_binary<AF_INET6, 16>(address.host);
            break;
        case AddressType::domain:
            if (!is_acceptable_domain(address.host))
                throw Error("SOCKS5: a domain name must be 1 to 255 bytes without control characters");
            bytes += static_cast<char>(address.host.size());
            bytes += address.host;
            break;
        default:
            throw Error("SOCKS5: unknown address type " + std::to_string(static_cast<int>(address.type)));
    }
    bytes += static_cast<char>(address.port >> 8);
    bytes += static_cast<char>(address.port & 0xff);
    return bytes;
}

std::string no_authentication_greeting() {
    return {static_cast<char>(socks_version), '\x01', static_cast<char>(method_no_authentication)};
}

std::string encode_request(SocksCommand command, const SocksAddress& destination) {
    std::string bytes{static_cast<char>(socks_version), static_cast<char>(command), '\0'};
    return bytes + encode_address(destination);
}

Parsed<Greeting> parse_method_choice(std::string_view bytes) {
    ByteReader reader(bytes);
    Parsed<Greeting> parsed;
    const std::uint8_t version = reader.u8();
    const std::uint8_t method = reader.u8();
    if (reader.is_short()) return parsed;
    if (version != socks_version || method != method_no_authentication)
        return malformed_message<Greeting>(SocksReply::not_allowed);
    parsed.status = ParseStatus::complete;
    parsed.consumed = reader.consumed();
    parsed.message.offers_no_authentication = true;
    return parsed;
}

Parsed<SocksReplyMessage> parse_reply(std::string_view bytes) {
    ByteReader reader(bytes);
    Parsed<SocksReplyMessage> parsed;
    const std::uint8_t version = reader.u8();
    const std::uint8_t reply = reader.u8();
    const std::uint8_t reserved = reader.u8();
    if (reader.is_short()) return parsed;
    if (version != socks_version || reserved != 0)
        return malformed_message<SocksReplyMessage>(SocksReply::general_failure);
    const AddressOutcome address = read_address(reader, parsed.message.bound);
    if (address.status == ParseStatus::malformed) return malformed_message<SocksReplyMessage>(address.error);
    if (address.status == ParseStatus::need_more) return Parsed<SocksReplyMessage>{};
    parsed.status = ParseStatus::complete;
    parsed.consumed = reader.consumed();
    parsed.message.reply = static_cast<SocksReply>(reply);
    return parsed;
}

const char* reply_name(SocksReply reply) {
    switch (reply) {
        case SocksReply::succeeded: return "succeeded";
        case SocksReply::general_failure: return "general failure";
        case SocksReply::not_allowed: return "not allowed by the proxy's rules";
        case SocksReply::network_unreachable: return "network unreachable";
        case SocksReply::host_unreachable: return "host unreachable";
        case SocksReply::connection_refused: return "connection refused";
        case SocksReply::ttl_expired: return "TTL expired";
        case SocksReply::command_not_supported: return "command not supported";
        case SocksReply::address_type_not_supported: return "address type not supported";
    }
    return "unknown reply";
}

}  // namespace psi::proxy
