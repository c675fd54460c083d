#include "connect/packet_tunnel.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace psi::connect {
namespace {

constexpr std::size_t max_packet = 65535;
constexpr std::size_t up_limit = 256 * 1024;  // framed bytes waiting for the channel
constexpr int packets_per_round = 64;

}  // namespace

PacketTunnel::PacketTunnel(EventLoop& loop, TunnelSession& session, int tun, SshChannel channel,
                           const PacketTunnelAddresses& addresses, PacketTunnelCounters& counters,
                           EndedHandler ended)
    : loop_(loop),
      session_(session),
      tun_(tun),
      channel_(std::move(channel)),
      addresses_(addresses),
      counters_(counters),
      ended_(std::move(ended)) {
    ssh_callbacks_init(&callbacks_);
    callbacks_.userdata = this;
    callbacks_.channel_data_function = &PacketTunnel::on_channel_data;
    callbacks_.channel_eof_function = &PacketTunnel::on_channel_end;
    callbacks_.channel_close_function = &PacketTunnel::on_channel_end;
    callbacks_.channel_write_wontblock_function = &PacketTunnel::on_window;
    ssh_set_channel_callbacks(channel_.get(), &callbacks_);
    // Data may have come with the open confirmation, before the callbacks were set.
    char buffer[16384];
    int n;
    while ((n = ssh_channel_read_nonblocking(channel_.get(), buffer, sizeof buffer, 0)) > 0) {
        down_.append(buffer, static_cast<std::size_t>(n));
        take_frames();
    }
    // So may the channel's end.
    if (ssh_channel_is_eof(channel_.get()) || ssh_channel_is_closed(channel_.get())) end();
    watch_tun();
}

PacketTunnel::~PacketTunnel() {
    if (is_watching_tun_) loop_.remove(tun_);
    ssh_remove_channel_callbacks(channel_.get(), &callbacks_);
    session_.close_channel(std::move(channel_));
    if (!session_.has_failed()) session_.after_write();
}

// Whole frames go into the TUN; a TUN whose queue is full drops, as a link would.
void PacketTunnel::take_frames() {
    const std::span<std::uint8_t> frames(reinterpret_cast<std::uint8_t*>(down_.data()), down_.size());
    const std::size_t taken = connect::take_frames(frames, [this](std::span<std::uint8_t> packet) {
        if (!accept_inbound(packet, addresses_)) {
            ++counters_.refused_down;
            return;
        }
        if (::write(tun_, packet.data(), packet.size()) < 0) {
            ++counters_.unwritten_down;
            counters_.last_write_error = errno;
            return;
        }
        ++counters_.packets_down;
        counters_.bytes_down += packet.size();
    });
    down_.erase(0, taken);
}

int PacketTunnel::on_channel_data(ssh_session, ssh_channel, void* data, std::uint32_t size, int is_stderr,
                                  void* self_pointer) {
    auto* self = static_cast<PacketTunnel*>(self_pointer);
    if (is_stderr || self->has_ended_) return static_cast<int>(size);
    self->down_.append(static_cast<const char*>(data), size);
    self->take_frames();
    return static_cast<int>(size);
}

void PacketTunnel::on_channel_end(ssh_session, ssh_channel, void* self_pointer) {
    static_cast<PacketTunnel*>(self_pointer)->end();
}

void PacketTunnel::end() {
    if (has_ended_) return;
    has_ended_ = true;
    loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
        if (!alive.expired()) ended_("the server closed the packet tunnel");
    });
}

int PacketTunnel::on_window(ssh_session, ssh_channel, std::uint32_t, void* self_pointer) {
    auto* self = static_cast<PacketTunnel*>(self_pointer);
    if (!self->up_.empty()) {
        self->loop_.defer([self, alive = std::weak_ptr<bool>(self->alive_)] {
            if (alive.expired() || self->has_ended_) return;
            self->send_up();
            self->watch_tun();
        });
    }
    return 0;
}

void PacketTunnel::read_tun() {
    char packet[max_packet];
    for (int round = 0; round < packets_per_round && up_.size() < up_limit; ++round) {
        const ssize_t n = ::read(tun_, packet, sizeof packet);
        if (n <= 0) break;
        std::span<std::uint8_t> bytes(reinterpret_cast<std::uint8_t*>(packet), static_cast<std::size_t>(n));
        if (filter_outbound(bytes, addresses_) != OutboundDrop::none) {
            ++counters_.dropped_up;
            continue;
        }
        append_frame(up_, bytes);
        ++counters_.packets_up;
        counters_.bytes_up += static_cast<std::uint64_t>(n);
    }
    send_up();
}

void PacketTunnel::send_up() {
    if (up_.empty() || has_ended_ || session_.has_failed()) return;
    if (!session_.is_congested()) {
        const std::size_t size = std::min<std::size_t>(up_.size(), ssh_channel_window_size(channel_.get()));
        if (size == 0) return;  // on_window resumes
        const int written = ssh_channel_write(channel_.get(), up_.data(), static_cast<std::uint32_t>(size));
        if (written < 0) {  // the channel is closed, or closing
            end();
            return;
        }
        up_.erase(0, static_cast<std::size_t>(written));
        session_.after_write();
        if (written > 0 && !session_.is_congested()) return;
    }
    // libssh holds output, or took nothing with the window open (a key exchange): after the
    // next packets.
    wait_for_session();
}

void PacketTunnel::wait_for_session() {
    if (is_waiting_for_session_) return;
    is_waiting_for_session_ = true;
    session_.when_drained([this, alive = std::weak_ptr<bool>(alive_)] {
        if (alive.expired()) return;
        is_waiting_for_session_ = false;
        send_up();
        watch_tun();
    });
}

void PacketTunnel::watch_tun() {
    const bool wanted = !has_ended_ && !is_tun_gone_ && up_.size() < up_limit && !is_waiting_for_session_;
    if (wanted == is_watching_tun_) return;
    if (wanted)
        loop_.add(tun_, EPOLLIN, [this](std::uint32_t events) {
            if (events & EPOLLERR) {  // the device went away: psi-connect's tick ends the run
                is_tun_gone_ = true;
                watch_tun();
                return;
            }
            read_tun();
            watch_tun();
        });
    else
        loop_.remove(tun_);
    is_watching_tun_ = wanted;
}

}  // namespace psi::connect
