// psi-tun run: the packet engine between the TUN and a SOCKS5 proxy (docs/packet-engine.md §3). One thread,
// one event loop: packets read from the TUN (with virtio-net headers, so TSO superpackets
// pass whole) go to the TCP NAT or the UDP relay; anything else is answered with ICMP
// "administratively prohibited" and counted.
#pragma once

#include <memory>
#include <vector>

#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"
#include "engine/engine_context.hpp"
#include "engine/engine_stats.hpp"
#include "engine/tcp_nat.hpp"
#include "engine/udp_relay.hpp"
#include "packet/reassembly.hpp"

namespace psi::engine {

class Engine : public PacketOutput {
public:
    // `tun` from attach_tun(); `fast_path` from TcpFastPath::attach(), or null. Throws psi::Error
    // when the listeners cannot be set up.
    Engine(EventLoop& loop, UniqueFd tun, EngineSettings settings, std::unique_ptr<TcpFastPath> fast_path = nullptr);
    ~Engine() override;

    void send(std::span<const std::uint8_t> packet, const VnetHeader* header = nullptr) override;
    const EngineStats& stats();

private:
    void on_readable();
    void handle(std::span<std::uint8_t> packet, const VnetHeader& header);

    EventLoop& loop_;
    UniqueFd tun_;
    EngineSettings settings_;
    std::unique_ptr<TcpFastPath> fast_path_;
    EngineStats stats_;
    ProxyHealth proxy_health_;
    IcmpBudget icmp_budget_;
    EngineContext context_;
    std::unique_ptr<TcpNat> tcp_;
    std::unique_ptr<UdpRelay> udp_;
    packet::Reassembler fragments_;
    std::vector<std::uint8_t> buffer_;
};

}  // namespace psi::engine
