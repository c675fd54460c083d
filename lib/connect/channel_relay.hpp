// One proxied connection after its channel is open: bytes between the local client's socket
// and the SSH channel, both ways, with end-of-file passed on in each direction. Flow control end
// to end: the client is read only while the channel's window and libssh's output have room, and
// channel data is taken from libssh only as fast as the client accepts it, so a slow reader
// holds the server back (the SSH window) instead of making memory grow.
#pragma once

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "connect/ssh_handle.hpp"
#include "connect/tunnel_session.hpp"
#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"

namespace psi::connect {

struct RelayTotals {
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;
};

class ChannelRelay {
public:
    using FinishedHandler = std::function<void(ChannelRelay*)>;

    // `early` holds client bytes read before the channel opened (sent first). `finished` is
    // called once, when both directions are done or one failed; the owner then destroys it
    // (not from inside the call).
    ChannelRelay(EventLoop& loop, TunnelSession& session, UniqueFd client, SshChannel channel, std::string early,
                 RelayTotals& totals, FinishedHandler finished);
    ~ChannelRelay();
    ChannelRelay(const ChannelRelay&) = delete;
    ChannelRelay& operator=(const ChannelRelay&) = delete;

private:
    static int on_channel_data(ssh_session, ssh_channel, void* data, std::uint32_t size, int is_stderr, void* self);
    static void on_channel_eof(ssh_session, ssh_channel, void* self);
    static void on_channel_close(ssh_session, ssh_channel, void* self);
    static int on_window(ssh_session, ssh_channel, std::uint32_t bytes, void* self);

    void on_client(std::uint32_t events);
    void flush_to_channel();
    void pass_eof_to_client();
    void wait_for_session();
    void defer_settle();
    void schedule_flush();
    void read_client();
    bool write_channel(const char* data, std::size_t size);
    void drain_channel();
    void watch();
    void finish_when_done();
    void finish();

    EventLoop& loop_;
    TunnelSession& session_;
    UniqueFd client_;
    SshChannel channel_;
    ssh_channel_callbacks_struct callbacks_{};
    RelayTotals& totals_;
    FinishedHandler finished_;
    std::string to_client_;        // taken from the channel, not yet accepted by the client
    std::string to_channel_;       // early bytes, then whatever the window could not take
    bool is_channel_holding_ = false;  // libssh keeps channel data the client could not take yet
    bool is_client_eof_ = false;       // the client finished sending; EOF sent on the channel
    bool is_channel_eof_ = false;
    bool is_channel_closed_ = false;
    bool is_client_shut_ = false;      // EOF passed on to the client
    bool is_waiting_for_window_ = false;   // the peer's window is closed: on_window resumes
    bool is_waiting_for_session_ = false;  // libssh holds output or is in a key exchange
    bool is_finished_ = false;
    bool is_client_hung_up_ = false;   // epoll reports a hang-up that cannot be masked
    bool is_flush_scheduled_ = false;
    std::uint32_t watched_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace psi::connect
