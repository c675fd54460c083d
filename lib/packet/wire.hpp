// What every part of the engine that reads or writes IP, TCP and UDP headers shares: their
// fixed sizes, addresses, and 16-bit fields in network byte order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/byte_reader.hpp"
#include "packet/packet.hpp"

namespace psi::packet::wire {

inline constexpr std::size_t ipv4_header_size = 20;  // without options
inline constexpr std::size_t ipv6_header_size = 40;  // without extension headers
inline constexpr std::size_t tcp_header_size = 20;   // without options
inline constexpr std::size_t udp_header_size = 8;

inline std::size_t address_size(IpVersion version) { return version == IpVersion::v4 ? 4 : 16; }

// The 16-bit field a rewrite is about to replace, at the start of `field`; 0 when it is shorter.
inline std::uint16_t load_u16(std::span<const std::uint8_t> field) { return ByteReader(field).u16(); }

// An IPv4 or IPv6 address, as both headers carry it.
inline void read_address(ByteReader& reader, IpVersion version, IpAddress& address) {
    address.version = version;
    reader.copy_to(std::span(address.bytes).first(address_size(version)));
}

inline void store_u16(std::span<std::uint8_t> bytes, std::size_t offset, std::uint16_t value) {
    bytes[offset] = static_cast<std::uint8_t>(value >> 8);
    bytes[offset + 1] = static_cast<std::uint8_t>(value & 0xff);
}

}  // namespace psi::packet::wire
