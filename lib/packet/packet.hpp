// IP packets as the packet engine sees them on the TUN (docs/packet-engine.md §3): a bounds-checked parse of
// the IPv4/IPv6 and TCP/UDP headers, and in-place rewriting of addresses and ports with
// incremental checksum updates (RFC 1624), as the kernel-NAT "system stack" needs.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <variant>

namespace psi::packet {

enum class IpVersion : std::uint8_t { v4 = 4, v6 = 6 };

namespace ip_protocol {
inline constexpr std::uint8_t icmp = 1;
inline constexpr std::uint8_t tcp = 6;
inline constexpr std::uint8_t udp = 17;
inline constexpr std::uint8_t icmpv6 = 58;
}  // namespace ip_protocol

namespace tcp_flag {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}  // namespace tcp_flag

struct IpAddress {
    IpVersion version = IpVersion::v4;
    std::array<std::uint8_t, 16> bytes{};  // IPv4 in the first 4
    std::string text() const;
    friend bool operator==(const IpAddress&, const IpAddress&) = default;
    friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
};

struct Endpoint {
    IpAddress address;
    std::uint16_t port = 0;
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
    friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

struct PacketView {
    IpVersion version = IpVersion::v4;
    std::uint8_t protocol = 0;
    std::size_t ip_header_length = 0;  // IPv4: IHL*4; IPv6: 40 (no extension headers)
    std::size_t total_length = 0;      // from the header; never more than the buffer
    Endpoint source;                   // ports are 0 for protocols without ports
    Endpoint destination;
    std::uint8_t tcp_flags = 0;        // TCP only
    std::uint32_t tcp_sequence = 0;    // TCP only
    std::uint32_t tcp_acknowledgement = 0;
    std::size_t payload_length = 0;    // bytes after the transport header
};

enum class PacketError {
    truncated,            // shorter than its headers or its total length says
    bad_version,
    bad_header_length,    // IHL < 5, or beyond the packet
    fragment,             // IPv4 MF or offset != 0
    extension_headers,    // IPv6 next header that is not TCP, UDP or ICMPv6
    bad_transport_header, // TCP data offset < 5 or beyond the packet, UDP length wrong
};

const char* packet_error_name(PacketError error);

std::variant<PacketView, PacketError> parse_packet(std::span<const std::uint8_t> packet);

// The Internet checksum (RFC 1071) over `bytes`, starting from a partial sum.
std::uint16_t internet_checksum(std::span<const std::uint8_t> bytes, std::uint32_t partial_sum = 0);

// Whether the IPv4 header checksum and the TCP/UDP checksum (with the pseudo-header) hold.
bool has_valid_checksums(std::span<const std::uint8_t> packet, const PacketView& view);

// What the TCP/UDP checksum field holds: the Internet checksum, or (a packet read with a
// virtio-net header flagged NEEDS_CSUM, docs/packet-engine.md §3.4) only the pseudo-header's sum, not
// inverted, which whoever completes the checksum later adds the segment to.
enum class TransportChecksum { complete, partial };

// Rewrites source and destination (addresses and ports) in place and updates the IPv4 header
// checksum and the TCP/UDP checksum incrementally; the families must match the packet's.
// A UDP/IPv4 checksum of 0 (none) stays 0. A partial checksum changes with the addresses
// only: ports are not part of the pseudo-header.
void rewrite_endpoints(std::span<std::uint8_t> packet, const PacketView& view, const Endpoint& source,
                       const Endpoint& destination,
                       TransportChecksum transport_checksum = TransportChecksum::complete);

}  // namespace psi::packet
