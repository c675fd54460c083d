#include "connect/packet_filter.hpp"

#include <variant>

#include "core/byte_reader.hpp"
#include "engine/engine_context.hpp"
#include "packet/ip_address.hpp"

namespace psi::connect {
namespace {

constexpr std::uint16_t dns_port = 53;
constexpr std::size_t frame_length_size = 2;

const packet::IpAddress& in_tunnel_dns(const PacketTunnelAddresses& addresses, packet::IpVersion version) {
    return version == packet::IpVersion::v4 ? addresses.dns_ipv4 : addresses.dns_ipv6;
}

bool carries_ports(std::uint8_t protocol) {
    return protocol == packet::ip_protocol::tcp || protocol == packet::ip_protocol::udp;
}

}  // namespace

const packet::IpAddress& server_dns_address(packet::IpVersion version) {
    static const packet::IpAddress v4 = packet::parse_ip_address("10.0.0.2", "the server's resolver");
    static const packet::IpAddress v6 = packet::parse_ip_address("fd19:ca83:e6d5:1c44::2", "the server's resolver");
    return version == packet::IpVersion::v4 ? v4 : v6;
}

OutboundDrop filter_outbound(std::span<std::uint8_t> packet, const PacketTunnelAddresses& addresses) {
    const auto parsed = packet::parse_packet(packet);
    const auto* view = std::get_if<packet::PacketView>(&parsed);
    if (!view || view->total_length != packet.size()) return OutboundDrop::malformed;
    if (view->version == packet::IpVersion::v4 && view->ip_header_length != 20) return OutboundDrop::malformed;  // options
    if (!carries_ports(view->protocol)) return OutboundDrop::protocol;
    if (view->source.port == 0 || view->destination.port == 0) return OutboundDrop::port_zero;
    const bool is_v4 = view->version == packet::IpVersion::v4;
    if (view->source.address != (is_v4 ? addresses.tun_ipv4 : addresses.tun_ipv6)) return OutboundDrop::source;
    if (view->destination.address == in_tunnel_dns(addresses, view->version)) {
        if (view->destination.port != dns_port) return OutboundDrop::destination;
        packet::rewrite_endpoints(packet, *view, view->source,
                                  packet::Endpoint{server_dns_address(view->version), dns_port});
        return OutboundDrop::none;
    }
    if (!packet::is_forwardable(view->destination.address)) return OutboundDrop::destination;
    return OutboundDrop::none;
}

void append_frame(std::string& frames, std::span<const std::uint8_t> packet) {
    frames.push_back(static_cast<char>(packet.size() >> 8));
    frames.push_back(static_cast<char>(packet.size() & 0xff));
    frames.append(reinterpret_cast<const char*>(packet.data()), packet.size());
}

std::size_t take_frames(std::span<std::uint8_t> frames, const std::function<void(std::span<std::uint8_t>)>& packet) {
    ByteReader reader(frames);
    std::size_t taken = 0;
    for (;;) {
        const std::size_t length = reader.u16();
        reader.skip(length);
        if (reader.is_short()) return taken;
        // The reader found the frame whole; the packet is handed on writable, to be rewritten in place.
        packet(frames.subspan(taken + frame_length_size, length));
        taken = reader.consumed();
    }
}

bool accept_inbound(std::span<std::uint8_t> packet, const PacketTunnelAddresses& addresses) {
    const auto parsed = packet::parse_packet(packet);
    const auto* view = std::get_if<packet::PacketView>(&parsed);
    if (!view || view->total_length != packet.size()) return false;
    const bool is_v4 = view->version == packet::IpVersion::v4;
    if (view->destination.address != (is_v4 ? addresses.tun_ipv4 : addresses.tun_ipv6)) return false;
    if (carries_ports(view->protocol) && view->source.port == dns_port &&
        view->source.address == server_dns_address(view->version)) {
        packet::rewrite_endpoints(packet, *view, packet::Endpoint{in_tunnel_dns(addresses, view->version), dns_port},
                                  view->destination);
        return true;
    }
    return !(is_v4 ? packet::is_in_network(view->source.address, addresses.tun_ipv4, addresses.tun_prefix_ipv4)
                   : packet::is_in_network(view->source.address, addresses.tun_ipv6, addresses.tun_prefix_ipv6));
}

PacketTunnelAddresses packet_tunnel_addresses(const engine::EngineSettings& settings) {
    return PacketTunnelAddresses{settings.tun_address_ipv4, settings.tun_address_ipv6, settings.tun_prefix_ipv4,
                                 settings.tun_prefix_ipv6,  settings.dns_ipv4,         settings.dns_ipv6};
}

}  // namespace psi::connect
