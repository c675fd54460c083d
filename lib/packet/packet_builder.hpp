// Packets the engine writes into the TUN itself, with complete checksums: the RST that ends an
// application's connection, a UDP datagram from the far end, and ICMP "unreachable" errors.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "packet/packet.hpp"

namespace psi::packet {

// The reset RFC 9293 §3.10.7.1 sends in answer to `segment` (from its destination to its
// source): seq = its ack when it had one, otherwise ACK of everything it carried.
std::vector<std::uint8_t> build_tcp_reset(const PacketView& segment);

std::vector<std::uint8_t> build_udp(const Endpoint& source, const Endpoint& destination,
                                    std::span<const std::uint8_t> payload);

enum class Unreachable { network, host, port, administratively_prohibited };

// ICMP (IPv4) or ICMPv6 "destination unreachable" about `original`, from its destination to its
// source, quoting as much of it as RFC 1812 §4.3.2.3 (576 bytes) or RFC 4443 (1280) allow.
std::vector<std::uint8_t> build_unreachable(std::span<const std::uint8_t> original, const PacketView& view,
                                            Unreachable reason);

// Whether answering `view` with an ICMP error is allowed: never about an ICMP error itself
// (RFC 1122 §3.2.2, RFC 4443 §2.4), nor about a multicast or broadcast destination.
bool may_answer_with_icmp_error(std::span<const std::uint8_t> packet, const PacketView& view);

}  // namespace psi::packet
