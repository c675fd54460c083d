// psi-connect's local SOCKS5 proxy (RFC 1928, no authentication): CONNECT to IPv4, IPv6 and
// domain names over the tunnel's direct-tcpip channels, and UDP ASSOCIATE over udpgw. Hostile or slow clients are bounded: a
// request must be whole within 512 bytes and 10 seconds; a bad one gets its reply code and a close.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "connect/channel_relay.hpp"
#include "connect/tunnel_session.hpp"
#include "connect/udp_association.hpp"
#include "connect/udpgw_mux.hpp"
#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"

namespace psi::connect {

class SocksServer {
public:
    using SessionSource = std::function<TunnelSession*()>;  // nullptr while there is no tunnel

    // Listens on 127.0.0.1:port (0: any free port). Without `is_udp_enabled` (a server with no
    // udpgw), UDP ASSOCIATE is answered "command not supported".
    SocksServer(EventLoop& loop, std::uint16_t port, SessionSource session, RelayTotals& totals, bool is_udp_enabled);
    ~SocksServer();
    std::uint16_t port() const { return port_; }
    std::size_t connection_count() const { return clients_.size() + relays_.size() + associations_.size(); }

    // Ends every connection that uses the tunnel (before the tunnel's session goes away).
    void close_all();
    // Request timeouts, and accepting again after running out of descriptors.
    void tick();

private:
    struct Client {
        UniqueFd socket;
        std::string received;
        bool is_greeted = false;
        bool is_opening = false;
        std::uint64_t open_id = 0;
        TunnelSession* session = nullptr;
        std::chrono::steady_clock::time_point deadline;
    };

    void accept_clients();
    void on_client(int fd, std::uint32_t events);
    void advance(Client& client);
    void start_connect(Client& client, const std::string& host, std::uint16_t port);
    void start_udp(Client& client);
    void on_opened(int fd, OpenResult result);
    void refuse(int fd, proxy::SocksReply reply);
    void drop(int fd);

    EventLoop& loop_;
    SessionSource session_;
    RelayTotals& totals_;
    std::uint16_t port_ = 0;  // before listener_: the listener's construction sets it
    UniqueFd listener_;
    bool is_listening_ = true;
    std::unordered_map<int, Client> clients_;
    std::unordered_map<ChannelRelay*, std::unique_ptr<ChannelRelay>> relays_;
    bool is_udp_enabled_;
    TunnelSession* udpgw_session_ = nullptr;
    std::unique_ptr<UdpgwMux> udpgw_;
    std::unordered_map<UdpAssociation*, std::unique_ptr<UdpAssociation>> associations_;
};

// A TCP listener on 127.0.0.1:port, non-blocking; throws psi::Error naming the port when busy.
UniqueFd listen_on_loopback(std::uint16_t port, std::uint16_t& bound_port);

}  // namespace psi::connect
