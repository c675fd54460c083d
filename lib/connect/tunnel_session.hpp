// An established tunnel driven by psi-connect's event loop: libssh in non-blocking mode, its
// socket watched by the loop, direct-tcpip channels opened on request, global requests
// (keepalives, psiphon-connected), and the moment the tunnel fails (the session ends, the OSSH
// shim ends, or a request goes unanswered).
#pragma once

#include <libssh/libssh.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connect/dial.hpp"
#include "connect/ssh_handle.hpp"
#include "core/event_loop.hpp"
#include "proxy/socks5.hpp"

namespace psi::connect {

struct OpenResult {
    SshChannel channel;  // none when the open failed
    proxy::SocksReply reply = proxy::SocksReply::general_failure;
};

struct KeepaliveSettings {
    std::chrono::seconds min_interval{60};
    std::chrono::seconds max_interval{120};
    std::chrono::seconds timeout{30};
    std::chrono::seconds probe_timeout{10};  // for a probe after the network changed
};

class TunnelSession {
public:
    using OpenHandler = std::function<void(OpenResult)>;
    using FailureHandler = std::function<void(const std::string& reason)>;
    using RequestHandler = std::function<void(std::optional<std::string> reply)>;

    TunnelSession(EventLoop& loop, std::unique_ptr<Tunnel> tunnel, KeepaliveSettings keepalive,
                  FailureHandler on_failure);
    ~TunnelSession();
    TunnelSession(const TunnelSession&) = delete;
    TunnelSession& operator=(const TunnelSession&) = delete;

    // Opens a direct-tcpip channel to host:port (a name is resolved by the server). `done` is
    // called once, later, from the loop (never from inside open_forward); never after
    // cancel_open(id); with no channel when the session fails first.
    std::uint64_t open_forward(const std::string& host, std::uint16_t port, OpenHandler done);
    // Opens a channel of `type` with no type-specific data ("tun@psiphon.ca"), the same way.
    std::uint64_t open_custom(const std::string& type, OpenHandler done);
    void cancel_open(std::uint64_t id);

    // Sends global request `name` with `data` (psiphon-connected); `done` gets the reply's
    // payload, or nothing when the server refused it, later from the loop (never once the
    // session has failed). One request is on the wire at a time, keepalives included, and one
    // unanswered for the keepalive timeout fails the tunnel (libssh cannot give up on a request
    // and send the next).
    void send_request(std::string name, std::string data, RequestHandler done);

    // libssh holds output it could not send yet: readers should wait for when_drained().
    bool is_congested() const;
    void when_drained(std::function<void()> resume);
    // After writing to a channel: lets the loop flush what libssh could not send at once.
    void after_write();
    // For the owner of a channel that is done with it: CLOSE unless the channel or the whole
    // session is already gone, then the channel is freed.
    void close_channel(SshChannel channel);

    // Keepalives and open timeouts; the owner calls it about once a second.
    void tick();
    // The network changed: a keepalive now, and the tunnel is taken for dead unless it is
    // answered within the probe timeout.
    void probe();

    const Tunnel& tunnel() const { return *tunnel_; }
    ssh_session session() const { return tunnel_->session(); }
    bool has_failed() const { return has_failed_; }

private:
    struct PendingOpen {
        std::uint64_t id;
        SshChannel channel;
        std::string custom_type;  // empty: direct-tcpip to host:port
        std::string host;
        std::uint16_t port;
        std::chrono::steady_clock::time_point deadline;
        OpenHandler done;
    };

    std::uint64_t open(std::string custom_type, const std::string& host, std::uint16_t port, OpenHandler done);
    void on_socket(std::uint32_t events);
    void after_packets();
    void advance_opens();
    struct PendingRequest {
        std::string name;
        std::string data;
        RequestHandler done;  // empty for a keepalive
    };

    void send_keepalive();
    void advance_requests();
    void schedule_keepalive();
    void fail(const std::string& reason);

    EventLoop& loop_;
    std::unique_ptr<Tunnel> tunnel_;
    SshSessionEvent event_;  // after tunnel_: it lets go of the session before the session goes
    KeepaliveSettings keepalive_;
    FailureHandler on_failure_;
    std::list<PendingOpen> opens_;  // channels: freed before the session
    std::uint64_t next_open_id_ = 1;
    std::vector<std::function<void()>> drained_waiters_;
    std::deque<PendingRequest> requests_;  // the first is on the wire
    SshBuffer reply_{ssh_buffer_new()};
    std::chrono::steady_clock::time_point request_deadline_{};
    std::chrono::steady_clock::time_point next_keepalive_;
    bool is_keepalive_pending_ = false;  // queued or on the wire
    bool is_write_watched_ = false;
    bool has_failed_ = false;
    bool is_advance_scheduled_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The SOCKS reply for a refused channel open, from libssh's error text
// ("... error (2) Connection refused" -> connection_refused).
proxy::SocksReply reply_for_refusal(const std::string& libssh_error);

}  // namespace psi::connect
