// What psi-connect's local proxies share: listeners on 127.0.0.1 and [::1], clients held until their
// request is whole (at most 16 KiB and 10 seconds), a direct-tcpip channel opened for each
// request, then a ChannelRelay. Hostile or slow clients are bounded; a bad request gets its
// protocol's error reply and a close. SocksServer and HttpProxyServer say how requests look.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "connect/channel_relay.hpp"
#include "connect/tunnel_session.hpp"
#include "core/event_loop.hpp"
#include "core/loopback_listener.hpp"
#include "core/unique_fd.hpp"

namespace psi::connect {

class LocalProxy {
public:
    using SessionSource = std::function<TunnelSession*()>;  // nullptr while there is no tunnel

    // Accepts on `listeners` (listen_on_loopback, or the ones psi up hands down).
    LocalProxy(EventLoop& loop, LoopbackListeners listeners, SessionSource session, RelayTotals& totals);
    virtual ~LocalProxy();
    LocalProxy(const LocalProxy&) = delete;
    LocalProxy& operator=(const LocalProxy&) = delete;

    std::uint16_t port() const { return listeners_.port; }

    // Ends every connection that uses the tunnel (before the tunnel's session goes away).
    virtual void close_all();
    // Request timeouts, and accepting again after running out of descriptors.
    void tick();

protected:
    struct Client {
        UniqueFd socket;
        std::string received;
        bool is_greeted = false;  // SOCKS: the method negotiation is done
        bool is_opening = false;
        std::uint64_t open_id = 0;
        std::string success_reply;  // sent when the channel opens
        TunnelSession* session = nullptr;
        std::chrono::steady_clock::time_point deadline;
    };

    // Reads what the client sent so far in client.received; calls start_connect, refuse or
    // drop, or returns to wait for more.
    virtual void advance(Client& client) = 0;
    // The reply for a channel the server refused.
    virtual std::string refusal_reply(const OpenResult& result) const = 0;
    // The reply when there is no tunnel.
    virtual std::string no_tunnel_reply() const = 0;

    // Opens the channel; `success_reply` goes to the client when it opens, `upstream` to the
    // server before anything else the client sends.
    void start_connect(Client& client, const std::string& host, std::uint16_t port, std::string success_reply,
                       std::string upstream = {});
    void refuse(int fd, const std::string& reply);
    void drop(int fd);
    // Takes a client out of the proxy's hands (its descriptor leaves the loop).
    UniqueFd release(int fd);
    static void send_now(int fd, const std::string& bytes);

    EventLoop& loop_;
    SessionSource session_;

private:
    void accept_clients(int listener_fd);
    void watch_listeners();
    void on_client(int fd, std::uint32_t events);
    void on_opened(int fd, OpenResult result);
    void listen_again();

    RelayTotals& totals_;
    LoopbackListeners listeners_;
    bool is_listening_ = true;
    std::unordered_map<int, Client> clients_;
    std::unordered_map<ChannelRelay*, std::unique_ptr<ChannelRelay>> relays_;
};

}  // namespace psi::connect
