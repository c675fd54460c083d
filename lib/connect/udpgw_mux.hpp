// UDP over the tunnel (docs/protocol.md §6.2): one udpgw channel (direct-tcpip to the exact string
// "127.0.0.1" port 7300) per tunnel, shared by every UDP flow, each flow a connection id.
// Opened when the first flow needs it and again after it ends. UDP may be lost: upstream frames
// that find the channel's window and queue full are dropped (counted), never buffered without
// bound; downstream frames are taken as they come.
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "connect/ssh_handle.hpp"
#include "connect/tunnel_session.hpp"
#include "core/event_loop.hpp"
#include "proxy/udpgw.hpp"

namespace psi::connect {

class UdpgwMux {
public:
    using Receiver = std::function<void(const proxy::UdpgwMessage& message)>;

    UdpgwMux(EventLoop& loop, TunnelSession& session);
    ~UdpgwMux();
    UdpgwMux(const UdpgwMux&) = delete;
    UdpgwMux& operator=(const UdpgwMux&) = delete;

    // A connection id for a new flow whose replies go to `receiver`; nullopt when too many.
    std::optional<std::uint16_t> open_flow(bool is_ipv6, Receiver receiver);
    void close_flow(std::uint16_t connection_id);
    // `message.connection_id` must come from open_flow.
    void send(const proxy::UdpgwMessage& message);

    std::uint64_t dropped() const { return dropped_; }

private:
    struct Flow {
        bool is_ipv6;
        Receiver receiver;
    };
    enum class State { closed, opening, open };

    void open_channel();
    void on_opened(OpenResult result);
    void flush();
    void close_channel();
    static int on_data(ssh_session, ssh_channel, void* data, std::uint32_t size, int is_stderr, void* self);
    static void on_closed(ssh_session, ssh_channel, void* self);
    static int on_window(ssh_session, ssh_channel, std::uint32_t bytes, void* self);

    EventLoop& loop_;
    TunnelSession& session_;
    State state_ = State::closed;
    std::uint64_t open_id_ = 0;
    SshChannel channel_;
    ssh_channel_callbacks_struct callbacks_{};
    std::string upstream_;    // frames waiting for the channel
    std::string downstream_;  // an incomplete frame from the server
    std::unordered_map<std::uint16_t, Flow> flows_;
    std::uint16_t next_id_ = 1;
    std::uint64_t dropped_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace psi::connect
