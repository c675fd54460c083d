#include "connect/udpgw_mux.hpp"

#include <algorithm>

#include "core/log.hpp"

namespace psi::connect {
namespace {

constexpr std::size_t max_flows = 4096;
constexpr std::size_t upstream_limit = 256 * 1024;
// The intercept address psiphond matches as a string (docs/protocol.md §6.2).
constexpr const char* udpgw_host = "127.0.0.1";
constexpr std::uint16_t udpgw_port = 7300;

}  // namespace

UdpgwMux::UdpgwMux(EventLoop& loop, TunnelSession& session) : loop_(loop), session_(session) {
    ssh_callbacks_init(&callbacks_);
    callbacks_.userdata = this;
    callbacks_.channel_data_function = &UdpgwMux::on_data;
    callbacks_.channel_close_function = &UdpgwMux::on_closed;
    callbacks_.channel_eof_function = &UdpgwMux::on_closed;
    callbacks_.channel_write_wontblock_function = &UdpgwMux::on_window;
}

UdpgwMux::~UdpgwMux() {
    if (state_ == State::opening) session_.cancel_open(open_id_);
    close_channel();
}

std::optional<std::uint16_t> UdpgwMux::open_flow(bool is_ipv6, Receiver receiver) {
    if (flows_.size() >= max_flows) return std::nullopt;
    while (next_id_ == 0 || flows_.count(next_id_)) ++next_id_;
    const std::uint16_t id = next_id_++;
    flows_.emplace(id, Flow{is_ipv6, std::move(receiver)});
    return id;
}

void UdpgwMux::close_flow(std::uint16_t connection_id) { flows_.erase(connection_id); }

void UdpgwMux::send(const proxy::UdpgwMessage& message) {
    if (session_.has_failed()) return;
    const std::string frame = proxy::encode_udpgw(message);
    if (upstream_.size() + frame.size() > upstream_limit) {
        ++dropped_;
        return;
    }
    upstream_ += frame;
    if (state_ == State::closed) open_channel();
    if (state_ == State::open) flush();
}

void UdpgwMux::open_channel() {
    state_ = State::opening;
    open_id_ = session_.open_forward(udpgw_host, udpgw_port, [this, alive = std::weak_ptr<bool>(alive_)](OpenResult result) {
        if (!alive.expired()) on_opened(std::move(result));
    });
}

void UdpgwMux::on_opened(OpenResult result) {
    if (!result.channel) {
        state_ = State::closed;
        dropped_ += upstream_.empty() ? 0 : 1;
        upstream_.clear();
        log::warning("the server refused UDP (udpgw)");
        return;
    }
    channel_ = std::move(result.channel);
    state_ = State::open;
    ssh_set_channel_callbacks(channel_.get(), &callbacks_);
    flush();
}

void UdpgwMux::flush() {
    if (state_ != State::open || upstream_.empty()) return;
    const std::size_t size = std::min<std::size_t>(upstream_.size(), ssh_channel_window_size(channel_.get()));
    if (size == 0) return;  // on_window flushes
    const int written = ssh_channel_write(channel_.get(), upstream_.data(), static_cast<std::uint32_t>(size));
    if (written < 0) {
        close_channel();
        return;
    }
    upstream_.erase(0, static_cast<std::size_t>(written));
    session_.after_write();
}

void UdpgwMux::close_channel() {
    if (!channel_) return;
    ssh_remove_channel_callbacks(channel_.get(), &callbacks_);
    session_.close_channel(std::move(channel_));
    state_ = State::closed;
    downstream_.clear();
}

int UdpgwMux::on_data(ssh_session, ssh_channel, void* data, std::uint32_t size, int is_stderr, void* self_pointer) {
    auto* self = static_cast<UdpgwMux*>(self_pointer);
    if (is_stderr) return static_cast<int>(size);
    self->downstream_.append(static_cast<const char*>(data), size);
    std::string_view pending = self->downstream_;
    while (!pending.empty()) {
        const std::optional<std::uint16_t> id = proxy::peek_udpgw_connection_id(pending);
        const auto flow = id ? self->flows_.find(*id) : self->flows_.end();
        const bool is_ipv6 = flow != self->flows_.end() && flow->second.is_ipv6;
        const proxy::ParsedUdpgw parsed = proxy::parse_udpgw(pending, is_ipv6);
        if (parsed.status == proxy::ParseStatus::need_more) break;
        if (parsed.status == proxy::ParseStatus::malformed) {
            log::warning("udpgw: a malformed frame from the server; UDP restarts");
            self->downstream_.clear();
            self->loop_.defer([self, alive = std::weak_ptr<bool>(self->alive_)] {
                if (!alive.expired()) self->close_channel();
            });
            return static_cast<int>(size);
        }
        pending.remove_prefix(parsed.consumed);
        if (flow != self->flows_.end() && !(parsed.message.flags & proxy::udpgw_flags::keepalive))
            flow->second.receiver(parsed.message);
    }
    self->downstream_.erase(0, self->downstream_.size() - pending.size());
    return static_cast<int>(size);
}

void UdpgwMux::on_closed(ssh_session, ssh_channel, void* self_pointer) {
    auto* self = static_cast<UdpgwMux*>(self_pointer);
    self->loop_.defer([self, alive = std::weak_ptr<bool>(self->alive_)] {
        if (!alive.expired()) self->close_channel();  // the next datagram opens a new one
    });
}

int UdpgwMux::on_window(ssh_session, ssh_channel, std::uint32_t, void* self_pointer) {
    auto* self = static_cast<UdpgwMux*>(self_pointer);
    self->loop_.defer([self, alive = std::weak_ptr<bool>(self->alive_)] {
        if (!alive.expired()) self->flush();
    });
    return 0;
}

}  // namespace psi::connect
