#include "connect/channel_relay.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace psi::connect {
namespace {

constexpr std::size_t chunk_size = 64 * 1024;
constexpr std::size_t to_client_limit = 64 * 1024;

bool would_block() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

}  // namespace

ChannelRelay::ChannelRelay(EventLoop& loop, TunnelSession& session, UniqueFd client, SshChannel channel,
                           std::string early, RelayTotals& totals, FinishedHandler finished)
    : loop_(loop),
      session_(session),
      client_(std::move(client)),
      channel_(std::move(channel)),
      totals_(totals),
      finished_(std::move(finished)),
      to_channel_(std::move(early)) {
    ssh_callbacks_init(&callbacks_);
    callbacks_.userdata = this;
    callbacks_.channel_data_function = &ChannelRelay::on_channel_data;
    callbacks_.channel_eof_function = &ChannelRelay::on_channel_eof;
    callbacks_.channel_close_function = &ChannelRelay::on_channel_close;
    callbacks_.channel_write_wontblock_function = &ChannelRelay::on_window;
    ssh_set_channel_callbacks(channel_.get(), &callbacks_);
    // Data, EOF or CLOSE may have come with the open confirmation, before the callbacks were set.
    is_channel_holding_ = true;
    loop_.add(client_.get(), EPOLLOUT, [this](std::uint32_t events) { on_client(events); });
    watched_ = EPOLLOUT;
    flush_to_channel();
    if (!is_finished_) watch();
}

ChannelRelay::~ChannelRelay() {
    if (loop_.contains(client_.get())) loop_.remove(client_.get());
    ssh_remove_channel_callbacks(channel_.get(), &callbacks_);
    session_.close_channel(std::move(channel_));
    if (!session_.has_failed()) session_.after_write();
}

void ChannelRelay::on_client(std::uint32_t events) {
    if (is_finished_) return;
    if (events & EPOLLERR) {
        finish();
        return;
    }
    if (events & EPOLLHUP) is_client_hung_up_ = true;
    if (events & EPOLLOUT) drain_channel();
    if (!is_finished_ && (events & (EPOLLIN | EPOLLHUP)) && (watched_ & EPOLLIN)) read_client();
    finish_when_done();
    if (!is_finished_) watch();
}

void ChannelRelay::read_client() {
    if (session_.is_congested()) {
        wait_for_session();
        return;
    }
    const std::uint32_t window = ssh_channel_window_size(channel_.get());
    if (window == 0) {
        is_waiting_for_window_ = true;  // on_window resumes
        return;
    }
    char buffer[chunk_size];
    const ssize_t n = ::recv(client_.get(), buffer, std::min<std::size_t>(window, sizeof buffer), MSG_DONTWAIT);
    if (n > 0) {
        write_channel(buffer, static_cast<std::size_t>(n));
    } else if (n == 0) {
        is_client_eof_ = true;
        ssh_channel_send_eof(channel_.get());
        session_.after_write();
    } else if (!would_block()) {
        finish();
    }
}

bool ChannelRelay::write_channel(const char* data, std::size_t size) {
    const int written = ssh_channel_write(channel_.get(), data, static_cast<std::uint32_t>(size));
    if (written < 0) {
        finish();
        return false;
    }
    totals_.bytes_up += static_cast<std::uint64_t>(written);
    const bool is_short = static_cast<std::size_t>(written) < size;
    if (is_short) to_channel_.append(data + written, size - static_cast<std::size_t>(written));
    session_.after_write();
    if (is_short && ssh_channel_window_size(channel_.get()) == 0) {
        is_waiting_for_window_ = true;  // on_window resumes
    } else if (is_short || session_.is_congested()) {
        // libssh holds output, or takes none during a key exchange: after the next packets.
        wait_for_session();
    }
    return true;
}

void ChannelRelay::flush_to_channel() {
    if (to_channel_.empty()) return;
    const std::size_t size = std::min<std::size_t>(to_channel_.size(), ssh_channel_window_size(channel_.get()));
    if (size == 0) {
        is_waiting_for_window_ = true;
        return;
    }
    const std::string pending = std::exchange(to_channel_, std::string());
    if (!write_channel(pending.data(), size)) return;
    if (size < pending.size()) {
        to_channel_.append(pending, size, std::string::npos);  // after what write_channel kept
        // on_window comes only when a closed window opens: a short write during a key exchange
        // leaves it open, and write_channel waits for the session instead.
        if (ssh_channel_window_size(channel_.get()) == 0) is_waiting_for_window_ = true;
    }
}

void ChannelRelay::wait_for_session() {
    if (is_waiting_for_session_) return;
    is_waiting_for_session_ = true;
    session_.when_drained([this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.expired() || is_finished_) return;
        is_waiting_for_session_ = false;
        flush_to_channel();
        if (!is_finished_) watch();
    });
}

void ChannelRelay::drain_channel() {
    if (!to_client_.empty()) {
        const ssize_t n = ::send(client_.get(), to_client_.data(), to_client_.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && !would_block()) {
            finish();
            return;
        }
        if (n > 0) to_client_.erase(0, static_cast<std::size_t>(n));
        if (!to_client_.empty()) return;
        if (to_client_.capacity() > 4096) to_client_ = std::string();  // idle flows hold no buffer
    }
    char buffer[chunk_size];
    while (is_channel_holding_ && !is_finished_) {
        const int n = ssh_channel_read_nonblocking(channel_.get(), buffer, sizeof buffer, 0);
        if (n <= 0) {
            is_channel_holding_ = false;
            if (n == SSH_EOF || ssh_channel_is_eof(channel_.get())) is_channel_eof_ = true;
            if (ssh_channel_is_closed(channel_.get())) is_channel_closed_ = is_channel_eof_ = true;
            break;
        }
        totals_.bytes_down += static_cast<std::uint64_t>(n);
        const ssize_t sent = ::send(client_.get(), buffer, static_cast<std::size_t>(n), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0 && !would_block()) {
            finish();
            return;
        }
        const std::size_t taken = sent > 0 ? static_cast<std::size_t>(sent) : 0;
        if (taken < static_cast<std::size_t>(n)) {
            to_client_.assign(buffer + taken, static_cast<std::size_t>(n) - taken);
            return;
        }
    }
    pass_eof_to_client();
}

void ChannelRelay::pass_eof_to_client() {
    if (is_channel_eof_ && !is_client_shut_ && to_client_.empty() && !is_channel_holding_) {
        ::shutdown(client_.get(), SHUT_WR);
        is_client_shut_ = true;
    }
}

void ChannelRelay::watch() {
    std::uint32_t wanted = 0;
    if (!is_client_eof_ && !is_waiting_for_window_ && !is_waiting_for_session_ && to_channel_.empty())
        wanted |= EPOLLIN;
    if (!to_client_.empty() || is_channel_holding_) wanted |= EPOLLOUT;
    if (wanted == 0 && is_client_hung_up_) {
        // A hang-up cannot be masked: stop watching until there is something to do again.
        if (loop_.contains(client_.get())) loop_.remove(client_.get());
        watched_ = 0;
        return;
    }
    if (!loop_.contains(client_.get())) {
        loop_.add(client_.get(), wanted, [this](std::uint32_t events) { on_client(events); });
    } else if (wanted != watched_) {
        loop_.modify(client_.get(), wanted);
    }
    watched_ = wanted;
}

void ChannelRelay::finish_when_done() {
    if (is_finished_) return;
    const bool is_down_done = is_channel_eof_ && is_client_shut_;
    if ((is_channel_closed_ && is_down_done) || (is_down_done && is_client_eof_)) finish();
}

void ChannelRelay::finish() {
    if (is_finished_) return;
    is_finished_ = true;
    if (loop_.contains(client_.get())) loop_.remove(client_.get());
    finished_(this);
}

// Data is gathered and sent to the client once per loop round: a tunnel delivers many SSH
// packets per read, and one send(2) per packet would wake the reader for each.
int ChannelRelay::on_channel_data(ssh_session, ssh_channel, void* data, std::uint32_t size, int is_stderr,
                                  void* self_pointer) {
    auto* self = static_cast<ChannelRelay*>(self_pointer);
    if (is_stderr || self->is_finished_) return static_cast<int>(size);
    std::size_t taken = 0;
    if (!self->is_channel_holding_ && self->to_client_.size() < to_client_limit)
        taken = std::min<std::size_t>(size, to_client_limit - self->to_client_.size());
    self->to_client_.append(static_cast<const char*>(data), taken);
    self->totals_.bytes_down += taken;
    if (taken < size) self->is_channel_holding_ = true;  // libssh keeps the rest, and the window stays closed
    self->schedule_flush();
    return static_cast<int>(taken);
}

void ChannelRelay::schedule_flush() {
    if (is_flush_scheduled_) return;
    is_flush_scheduled_ = true;
    loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.expired()) return;
        is_flush_scheduled_ = false;
        if (is_finished_) return;
        drain_channel();
        finish_when_done();
        if (!is_finished_) watch();
    });
}

void ChannelRelay::on_channel_eof(ssh_session, ssh_channel, void* self_pointer) {
    auto* self = static_cast<ChannelRelay*>(self_pointer);
    self->is_channel_eof_ = true;
    self->defer_settle();
}

void ChannelRelay::on_channel_close(ssh_session, ssh_channel, void* self_pointer) {
    auto* self = static_cast<ChannelRelay*>(self_pointer);
    self->is_channel_closed_ = self->is_channel_eof_ = true;
    self->defer_settle();
}

// The window opened again. If libssh's output is still pending, read_client waits for it to
// drain (when_drained); waiting here for that as well would wait for nothing.
int ChannelRelay::on_window(ssh_session, ssh_channel, std::uint32_t, void* self_pointer) {
    auto* self = static_cast<ChannelRelay*>(self_pointer);
    if (self->is_waiting_for_window_) {
        self->is_waiting_for_window_ = false;
        self->defer_settle();
    }
    return 0;
}

// Work that a libssh callback started is finished from the loop, outside libssh.
void ChannelRelay::defer_settle() {
    loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.expired() || is_finished_) return;
        flush_to_channel();
        if (!is_finished_) drain_channel();
        finish_when_done();
        if (!is_finished_) watch();
    });
}

}  // namespace psi::connect
