// The TCP half of the packet engine: the kernel-NAT "system stack" of docs/packet-engine.md §3.2. An
// application's SYN is held while the SOCKS CONNECT to its destination runs; only when the
// proxy has connected is the SYN rewritten (to NAT source F, a NAT port, and the listener) and
// written back into the TUN, so the kernel's own TCP completes the handshake with our
// listener. The accepted connection is then paired with the SOCKS connection by NAT port. A
// proxy that fails gets the application a reset, or an ICMP unreachable, at once.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"
#include "engine/engine_context.hpp"
#include "engine/engine_stats.hpp"
#include "engine/nat_table.hpp"
#include "engine/relay.hpp"
#include "proxy/socks5_client.hpp"

namespace psi::engine {

class TcpNat {
public:
    // Binds the listeners on the TUN's addresses (throws psi::Error when it cannot).
    explicit TcpNat(const EngineContext& context);
    ~TcpNat();

    // A TCP packet read from the TUN, parsed; `packet` is rewritten in place when passed on.
    void on_packet(std::span<std::uint8_t> packet, const packet::PacketView& view, const VnetHeader& header);
    // Ends flows that never completed and frees the ports of closed ones; call about once a second.
    void collect_garbage(Clock::time_point now);

    std::size_t active_flows() const { return flows_.size(); }

private:
    enum class Phase { connecting, injected, relaying, closed };
    struct FlowState {
        Phase phase = Phase::connecting;
        Clock::time_point since;
        std::vector<std::uint8_t> held_syn;  // the application's latest SYN, while connecting
        VnetHeader held_header{};
        std::unique_ptr<proxy::SocksHandshake> handshake;
        UniqueFd upstream;  // the connected SOCKS socket, until accept pairs it
        std::unique_ptr<Relay> relay;
        bool is_in_fast_path = false;  // the kernel NATs its segments too (TcpFastPath)
    };
    struct Listener {
        UniqueFd socket;
        packet::Endpoint address;  // T:Lp
    };

    Listener open_listener(const packet::IpAddress& address);
    void on_accept(int listener);
    void from_application(std::span<std::uint8_t> packet, const packet::PacketView& view, const VnetHeader& header);
    void from_listener(std::span<std::uint8_t> packet, const packet::PacketView& view, const VnetHeader& header);
    void start_flow(std::span<const std::uint8_t> packet, const packet::PacketView& view, const VnetHeader& header);
    void on_handshake(std::uint16_t port);
    void refuse(std::span<const std::uint8_t> syn, proxy::SocksReply reply);
    void forget(std::uint16_t port, Clock::time_point now);
    void pause_listeners();
    const Listener& listener_for(packet::IpVersion version) const {
        return version == packet::IpVersion::v4 ? ipv4_ : ipv6_;
    }
    const packet::IpAddress& nat_source_for(packet::IpVersion version) const {
        return version == packet::IpVersion::v4 ? settings_.nat_source_ipv4 : settings_.nat_source_ipv6;
    }
    // The connection the kernel's TCP sees for NAT port `port`: from F:port to the listener.
    Flow nat_leg(packet::IpVersion version, std::uint16_t port) const {
        return {packet::Endpoint{nat_source_for(version), port}, listener_for(version).address};
    }
    static packet::TransportChecksum checksum_kind(const VnetHeader& header);

    EventLoop& loop_;
    const EngineSettings& settings_;
    PacketOutput& output_;
    EngineStats& stats_;
    ProxyHealth& proxy_health_;
    TcpFastPath* fast_path_;
    NatTable table_;
    std::unordered_map<std::uint16_t, FlowState> flows_;
    Listener ipv4_, ipv6_;
    std::size_t connecting_flows_ = 0;
    bool are_listeners_paused_ = false;
};

}  // namespace psi::engine
