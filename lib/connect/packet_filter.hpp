// What psi-connect does to each packet of Psiphon's packet tunnel (docs/protocol.md §6.3) on its
// way out of the TUN and back in: drops what the server would drop anyway (Psiphon's
// processPacket), and the transparent DNS of the tunnel, which sends queries to the in-tunnel
// resolver address to the server's own resolver (10.0.0.2, fd19:ca83:e6d5:1c44::2) and gives
// the answers back the address the application asked, checksums fixed.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "engine/engine_context.hpp"
#include "packet/packet.hpp"

namespace psi::connect {

struct PacketTunnelAddresses {
    packet::IpAddress tun_ipv4, tun_ipv6;  // the TUN's own addresses (TunAddressIPv4, TunAddressIPv6)
    int tun_prefix_ipv4 = 24, tun_prefix_ipv6 = 64;
    packet::IpAddress dns_ipv4, dns_ipv6;  // where applications send DNS (TunDnsIPv4, TunDnsIPv6)
};

// Why a packet from the TUN is not sent.
enum class OutboundDrop { none, malformed, protocol, port_zero, source, destination };

// Checks one packet from the TUN and rewrites DNS in place; `none` when it may be sent. Only
// the TUN's own address may be the source: the server takes the client's address from its
// first packet, and the kernel sends some replies (a reset for a socket gone, from the uplink
// address) into the TUN, which would give the server the machine's LAN address.
OutboundDrop filter_outbound(std::span<std::uint8_t> packet, const PacketTunnelAddresses& addresses);

// Checks one packet from the server and rewrites DNS answers in place; false to drop it. It
// must be for the TUN's own address, and must not come from inside the TUN's networks (but
// for DNS answers): the kill switch lets psi-tun run's NAT legs, from there, reach local
// listeners, and a server must not pose as one.
bool accept_inbound(std::span<std::uint8_t> packet, const PacketTunnelAddresses& addresses);

// The packet tunnel's framing: each packet as a 2-byte big-endian length and the packet.
void append_frame(std::string& frames, std::span<const std::uint8_t> packet);
// Calls `packet` for each whole frame at the start of `frames` (the packet may be changed in
// place) and returns how many bytes those frames took; what is left is an incomplete frame.
std::size_t take_frames(std::span<std::uint8_t> frames, const std::function<void(std::span<std::uint8_t>)>& packet);

// From the TUN's settings as psi-tun reads them from the config.
PacketTunnelAddresses packet_tunnel_addresses(const engine::EngineSettings& settings);

// The server's resolver address for the family.
const packet::IpAddress& server_dns_address(packet::IpVersion version);

}  // namespace psi::connect
