// badvpn udpgw framing as Psiphon speaks it over a direct-tcpip channel to 127.0.0.1:7300
// (docs/protocol.md §6.2): u16 LE size, u8 flags, u16 LE conid, address (IPv4 4 B or IPv6 16 B,
// then u16 BE port), payload of at most 32768 bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/socks5.hpp"

namespace psi::proxy {

inline constexpr std::size_t udpgw_max_payload = 32768;

namespace udpgw_flags {
inline constexpr std::uint8_t keepalive = 0x01;
inline constexpr std::uint8_t rebind = 0x02;
inline constexpr std::uint8_t dns = 0x04;
inline constexpr std::uint8_t ipv6 = 0x08;
}  // namespace udpgw_flags

struct UdpgwMessage {
    std::uint8_t flags = 0;
    std::uint16_t connection_id = 0;
    bool is_ipv6 = false;
    std::string address;  // 4 or 16 raw bytes
    std::uint16_t port = 0;
    std::string payload;
};

// Client to server. Throws psi::Error when the payload is over 32768 bytes or the address is
// not 4/16 bytes.
std::string encode_udpgw(const UdpgwMessage& message);

struct ParsedUdpgw {
    ParseStatus status = ParseStatus::need_more;
    std::size_t consumed = 0;
    UdpgwMessage message;
};

// Server to client. psiphond sets flags=0 even for IPv6 (the quirk), so the caller says which
// address length the connection id uses. A size field that cannot hold the header, or a
// frame over the limits, is malformed. A KEEPALIVE frame needs only flags and conid; whatever
// follows them is skipped, and its address and payload come back empty.
ParsedUdpgw parse_udpgw(std::string_view bytes, bool is_ipv6_connection);

// The connection id of the frame at the start of `bytes`, so the caller can look up its address
// family before parse_udpgw without reading the bytes itself; nullopt while fewer than 5 bytes
// are there, or when the size field cannot hold the header (parse_udpgw says malformed).
std::optional<std::uint16_t> peek_udpgw_connection_id(std::string_view bytes);

}  // namespace psi::proxy
