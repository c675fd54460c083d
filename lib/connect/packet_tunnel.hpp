// Psiphon's packet tunnel (docs/protocol.md §6.3): the IP packets of the TUN carried whole over one
// tun@psiphon.ca channel, framed as u16 length (big-endian) ‖ packet both ways, as many to a
// channel write as are waiting. Packets leave the TUN only as fast as the channel's window and
// libssh's output take them: past a bound the TUN is not read, its queue fills and the kernel
// drops, which TCP answers by slowing down. Packets from the server go into the TUN at once.
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "connect/packet_filter.hpp"
#include "connect/ssh_handle.hpp"
#include "connect/tunnel_session.hpp"
#include "core/event_loop.hpp"

namespace psi::connect {

struct PacketTunnelCounters {
    std::uint64_t packets_up = 0, packets_down = 0;
    std::uint64_t bytes_up = 0, bytes_down = 0;
    std::uint64_t dropped_up = 0;    // by the filter
    std::uint64_t refused_down = 0;  // malformed, or not for the TUN (accept_inbound)
    std::uint64_t unwritten_down = 0;  // the TUN took no more (its queue was full)
    int last_write_error = 0;
};

class PacketTunnel {
public:
    using EndedHandler = std::function<void(const std::string& reason)>;

    // `tun` is the attached TUN (plain packets, non-blocking); the caller keeps it open while
    // this lives. `ended` is called once, from the loop, when the server closes the channel.
    PacketTunnel(EventLoop& loop, TunnelSession& session, int tun, SshChannel channel,
                 const PacketTunnelAddresses& addresses, PacketTunnelCounters& counters, EndedHandler ended);
    ~PacketTunnel();
    PacketTunnel(const PacketTunnel&) = delete;
    PacketTunnel& operator=(const PacketTunnel&) = delete;

private:
    static int on_channel_data(ssh_session, ssh_channel, void* data, std::uint32_t size, int is_stderr, void* self);
    static void on_channel_end(ssh_session, ssh_channel, void* self);
    static int on_window(ssh_session, ssh_channel, std::uint32_t bytes, void* self);

    void end();
    void take_frames();
    void read_tun();
    void send_up();
    void wait_for_session();
    void watch_tun();

    EventLoop& loop_;
    TunnelSession& session_;
    int tun_;
    SshChannel channel_;
    ssh_channel_callbacks_struct callbacks_{};
    PacketTunnelAddresses addresses_;
    PacketTunnelCounters& counters_;
    EndedHandler ended_;
    std::string up_;    // framed packets not yet taken by the channel
    std::string down_;  // channel bytes not yet a whole frame
    bool is_watching_tun_ = false;
    bool is_waiting_for_session_ = false;
    bool has_ended_ = false;
    bool is_tun_gone_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace psi::connect
