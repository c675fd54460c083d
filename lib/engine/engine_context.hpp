// What the parts of the packet engine (TCP NAT, UDP relay, DNS over TCP) share: the settings,
// the way back into the TUN, and the conversions between packet and SOCKS addresses.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>

#include "core/event_loop.hpp"
#include "engine/engine_stats.hpp"
#include "engine/tcp_fast_path.hpp"
#include "packet/packet.hpp"
#include "proxy/socks5.hpp"
#include "proxy/socks5_client.hpp"

namespace psi::engine {

// struct virtio_net_hdr (linux/virtio_net.h cannot be included from C++: a member is named
// "class"), little-endian as the TUN uses it on this host.
struct VnetHeader {
    std::uint8_t flags;
    std::uint8_t gso_type;
    std::uint16_t header_length;
    std::uint16_t gso_size;
    std::uint16_t checksum_start;
    std::uint16_t checksum_offset;
};
static_assert(sizeof(VnetHeader) == 10);
inline constexpr std::uint8_t vnet_needs_checksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM

using Clock = std::chrono::steady_clock;

struct EngineSettings {
    std::string tun_name;
    packet::IpAddress tun_address_ipv4, tun_address_ipv6;  // the listeners' addresses (docs/packet-engine.md §3.1 T)
    int tun_prefix_ipv4 = 24, tun_prefix_ipv6 = 64;
    packet::IpAddress nat_source_ipv4, nat_source_ipv6;    // F: the source of the NAT legs (.3)
    packet::IpAddress dns_ipv4, dns_ipv6;                  // the in-tunnel resolver address apps query (.2)
    packet::IpAddress dns_resolver;                        // where their queries go, through the proxy
    proxy::ProxyAddress socks;
    bool is_udp_enabled = true;                    // false: no UDP ASSOCIATE; DNS over TCP only
};

// The way back into the TUN. `header` is the virtio-net header read with the packet (NAT'd in
// place), or null for a packet the engine built with complete checksums.
class PacketOutput {
public:
    virtual ~PacketOutput() = default;
    virtual void send(std::span<const std::uint8_t> packet, const VnetHeader* header = nullptr) = 0;
};

// One warning when the SOCKS proxy cannot be reached, one line when it is back, instead of
// one per flow while psi-connect restarts.
class ProxyHealth {
public:
    void failed(const std::string& why);
    void reached();

private:
    bool is_down_ = false;
};

// The engine's own ICMP errors, limited like the kernel limits its own: at most 100 a second.
class IcmpBudget {
public:
    // Whether an error about `packet` may be sent now: it may be answered at all
    // (may_answer_with_icmp_error) and the budget of this second is not spent.
    bool allows(std::span<const std::uint8_t> packet, const packet::PacketView& view);

private:
    Clock::time_point window_{};
    int sent_in_window_ = 0;
};

// What every part of the engine works with; the engine owns all of it.
struct EngineContext {
    EventLoop& loop;
    const EngineSettings& settings;
    PacketOutput& output;
    EngineStats& stats;
    ProxyHealth& proxy_health;
    IcmpBudget& icmp_budget;
    TcpFastPath* fast_path;  // null: the engine NATs every segment itself
};

// Where what an application sends to `destination` goes through the proxy: port 53 of the
// in-tunnel DNS addresses to the resolver; nowhere (nullopt) for their other ports, the TUN's
// own networks, loopback, link-local, multicast or port 0; anything else to itself.
std::optional<packet::Endpoint> proxy_destination(const EngineSettings& settings, const packet::Endpoint& destination);
proxy::SocksAddress socks_address_of(const packet::Endpoint& endpoint);
// nullopt for a domain name or a malformed address.
std::optional<packet::Endpoint> endpoint_of(const proxy::SocksAddress& address);
// nullopt for a family other than IPv4 and IPv6.
std::optional<packet::Endpoint> endpoint_of_socket(const sockaddr_storage& address);
sockaddr_storage socket_address_of(const packet::Endpoint& endpoint, socklen_t& length);

}  // namespace psi::engine
