// The UDP half of the packet engine: each application socket (source address and port) gets a
// SOCKS5 UDP ASSOCIATE of its own (RFC 1928 §7), so replies from anywhere find it, as on a
// full-cone NAT. psi-connect carries these over udpgw and marks port 53 for the server's
// resolver. Queries to the in-tunnel DNS address go to the configured resolver and their
// answers come back from the address the application asked. When the proxy has no UDP
// ASSOCIATE (OpenSSH), DNS goes over TCP and other UDP is refused with an ICMP error.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"
#include "engine/dns_over_tcp.hpp"
#include "engine/engine_context.hpp"
#include "engine/engine_stats.hpp"
#include "proxy/socks5_client.hpp"

namespace psi::engine {

class UdpRelay {
public:
    explicit UdpRelay(const EngineContext& context);
    ~UdpRelay();

    // A UDP packet read from the TUN, parsed.
    void on_packet(std::span<const std::uint8_t> packet, const packet::PacketView& view);
    void collect_garbage(Clock::time_point now);
    std::size_t active_sessions() const { return sessions_.size(); }

private:
    struct Datagram {
        packet::Endpoint destination;  // where it really goes
        std::vector<std::uint8_t> payload;
    };
    struct Session {
        std::unique_ptr<proxy::SocksHandshake> handshake;  // until the association exists
        UniqueFd control;                                  // its end ends the association
        UniqueFd socket;                                   // datagrams to and from the relay
        std::deque<Datagram> queued;                       // sent once associated
        std::map<packet::Endpoint, packet::Endpoint> apparent_source;      // resolver -> the DNS address asked
        Clock::time_point started, last_active;
        bool is_dns_only = true;
    };

    Session* session_for(const packet::Endpoint& application);
    void on_control(const packet::Endpoint& application);
    void associated(const packet::Endpoint& application, Session& session);
    void send(Session& session, const Datagram& datagram);
    void on_datagrams(const packet::Endpoint& application);
    void unsupported(const packet::Endpoint& application, Session& session);
    void close(const packet::Endpoint& application);
    bool is_acceptable_relay(const packet::Endpoint& relay) const;

    EventLoop& loop_;
    const EngineSettings& settings_;
    PacketOutput& output_;
    EngineStats& stats_;
    ProxyHealth& proxy_health_;
    IcmpBudget& icmp_budget_;
    DnsOverTcp dns_over_tcp_;
    std::map<packet::Endpoint, std::unique_ptr<Session>> sessions_;
    Clock::time_point udp_unsupported_until_{};
};

}  // namespace psi::engine
