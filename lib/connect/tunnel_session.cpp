#include "connect/tunnel_session.hpp"

#include <openssl/rand.h>

#include <cstdio>
#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"

namespace psi::connect {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto open_timeout = std::chrono::seconds(30);
constexpr const char* keepalive_request = "keepalive@openssh.com";

}  // namespace

proxy::SocksReply reply_for_refusal(const std::string& libssh_error) {
    unsigned reason = 0;
    const std::size_t at = libssh_error.find("error (");
    if (at != std::string::npos) std::sscanf(libssh_error.c_str() + at, "error (%u)", &reason);
    if (reason == 1) return proxy::SocksReply::not_allowed;  // SSH_OPEN_ADMINISTRATIVELY_PROHIBITED
    if (libssh_error.find("refused") != std::string::npos) return proxy::SocksReply::connection_refused;
    if (reason == 2) return proxy::SocksReply::host_unreachable;  // SSH_OPEN_CONNECT_FAILED
    return proxy::SocksReply::general_failure;
}

TunnelSession::TunnelSession(EventLoop& loop, std::unique_ptr<Tunnel> tunnel, KeepaliveSettings keepalive,
                             FailureHandler on_failure)
    : loop_(loop),
      tunnel_(std::move(tunnel)),
      event_(tunnel_->session()),
      keepalive_(keepalive),
      on_failure_(std::move(on_failure)) {
    if (!reply_) throw Error("out of memory for the tunnel's events");
    ssh_set_blocking(session(), 0);
    schedule_keepalive();
    loop_.add(tunnel_->descriptor(), EPOLLIN, [this](std::uint32_t events) { on_socket(events); });
    after_packets();  // anything that arrived with the handshake
}

TunnelSession::~TunnelSession() {
    if (loop_.contains(tunnel_->descriptor())) loop_.remove(tunnel_->descriptor());
}

std::uint64_t TunnelSession::open_forward(const std::string& host, std::uint16_t port, OpenHandler done) {
    return open(std::string(), host, port, std::move(done));
}

std::uint64_t TunnelSession::open_custom(const std::string& type, OpenHandler done) {
    return open(type, std::string(), 0, std::move(done));
}

std::uint64_t TunnelSession::open(std::string custom_type, const std::string& host, std::uint16_t port,
                                  OpenHandler done) {
    const std::uint64_t id = next_open_id_++;
    SshChannel channel(has_failed_ ? nullptr : ssh_channel_new(session()));
    if (!channel) {
        loop_.defer([done = std::move(done)] { done(OpenResult{}); });
        return id;
    }
    opens_.push_back(PendingOpen{id, std::move(channel), std::move(custom_type), host, port,
                                 Clock::now() + open_timeout, std::move(done)});
    // Sent from the loop, never from here: `done` must not run while the caller is still
    // inside open_forward (it may free what the caller holds).
    if (!is_advance_scheduled_) {
        is_advance_scheduled_ = true;
        loop_.defer([this, alive = std::weak_ptr<bool>(alive_)] {
            if (alive.expired()) return;
            is_advance_scheduled_ = false;
            if (has_failed_) return;
            advance_opens();
            after_write();
        });
    }
    return id;
}

void TunnelSession::cancel_open(std::uint64_t id) {
    for (auto it = opens_.begin(); it != opens_.end(); ++it) {
        if (it->id != id) continue;
        opens_.erase(it);  // its channel freed: a late confirmation is answered with a close by libssh
        return;
    }
}

bool TunnelSession::is_congested() const { return (ssh_get_poll_flags(session()) & SSH_WRITE_PENDING) != 0; }

void TunnelSession::when_drained(std::function<void()> resume) {
    drained_waiters_.push_back(std::move(resume));
    after_write();
}

void TunnelSession::after_write() {
    if (has_failed_) return;
    const bool wants_write = is_congested();
    if (wants_write != is_write_watched_) {
        loop_.modify(tunnel_->descriptor(), wants_write ? EPOLLIN | EPOLLOUT : EPOLLIN);
        is_write_watched_ = wants_write;
    }
}

void TunnelSession::close_channel(SshChannel channel) {
    if (!has_failed_ && !ssh_channel_is_closed(channel.get())) ssh_channel_close(channel.get());
}

void TunnelSession::on_socket(std::uint32_t) {
    if (has_failed_) return;
    // libssh reads its socket once per poll: a few rounds while data keeps coming, then the
    // rest of the loop gets its turn.
    for (int round = 0; round < 4; ++round) {
        const int status = ssh_event_dopoll(event_.get(), 0);
        if (status == SSH_ERROR && !ssh_is_connected(session())) {
            fail(std::string("the tunnel broke: ") + ssh_get_error(session()));
            return;
        }
        if (status != SSH_OK || !ssh_is_connected(session())) break;
    }
    after_packets();
}

void TunnelSession::after_packets() {
    if (has_failed_) return;
    if (!ssh_is_connected(session())) {
        const std::string transport = tunnel_->transport_failure();
        fail("the tunnel closed: " + (transport.empty() ? std::string(ssh_get_error(session())) : transport));
        return;
    }
    advance_opens();
    advance_requests();
    if (has_failed_) return;
    after_write();
    if (!is_congested() && !drained_waiters_.empty()) {
        std::vector<std::function<void()>> waiters;
        waiters.swap(drained_waiters_);
        for (auto& resume : waiters) resume();
    }
}

void TunnelSession::advance_opens() {
    const auto now = Clock::now();
    for (auto it = opens_.begin(); it != opens_.end() && !has_failed_;) {
        ssh_channel channel = it->channel.get();
        const int status = it->custom_type.empty()
                               ? ssh_channel_open_forward(channel, it->host.c_str(), it->port, "127.0.0.1", 0)
                               : ssh_channel_open_custom(channel, it->custom_type.c_str(), nullptr, 0);
        if (status == SSH_AGAIN && now < it->deadline) {
            ++it;
            continue;
        }
        OpenResult result;
        if (status == SSH_OK) {
            result.channel = std::move(it->channel);
            result.reply = proxy::SocksReply::succeeded;
        } else {
            const std::string error = status == SSH_AGAIN ? "no answer in time" : ssh_get_error(session());
            log::debug("channel open failed: " + error);
            result.reply = status == SSH_AGAIN ? proxy::SocksReply::ttl_expired : reply_for_refusal(error);
            it->channel.reset();
        }
        OpenHandler done = std::move(it->done);
        it = opens_.erase(it);
        done(std::move(result));
    }
}

void TunnelSession::schedule_keepalive() {
    auto span = (keepalive_.max_interval - keepalive_.min_interval).count();
    std::uint32_t random = 0;
    RAND_bytes(reinterpret_cast<unsigned char*>(&random), sizeof random);
    const auto extra = span > 0 ? std::chrono::seconds(random % (span + 1)) : std::chrono::seconds(0);
    next_keepalive_ = Clock::now() + keepalive_.min_interval + extra;
}

void TunnelSession::send_request(std::string name, std::string data, RequestHandler done) {
    if (has_failed_) return;
    requests_.push_back(PendingRequest{std::move(name), std::move(data), std::move(done)});
    if (requests_.size() == 1) request_deadline_ = Clock::now() + keepalive_.timeout;
    advance_requests();
    if (!has_failed_) after_write();
}

void TunnelSession::advance_requests() {
    while (!requests_.empty() && !has_failed_) {
        PendingRequest& request = requests_.front();
        const int status = ssh_send_global_request(session(), request.name.c_str(), request.data.data(),
                                                   request.data.size(), 1, reply_.get());
        if (status == SSH_AGAIN) {
            if (Clock::now() >= request_deadline_)
                fail("the server stopped answering (no " +
                     std::string(request.done ? request.name : "keepalive") + " reply in time)");
            return;
        }
        if (status == SSH_ERROR && ssh_get_error_code(session()) != SSH_REQUEST_DENIED) {
            fail(request.name + ": " + ssh_get_error(session()));
            return;
        }
        std::optional<std::string> reply;
        if (status == SSH_OK)
            reply.emplace(static_cast<const char*>(ssh_buffer_get(reply_.get())), ssh_buffer_get_len(reply_.get()));
        RequestHandler done = std::move(request.done);
        requests_.pop_front();
        if (!requests_.empty()) request_deadline_ = Clock::now() + keepalive_.timeout;
        if (done) {
            loop_.defer([done = std::move(done), reply = std::move(reply), alive = std::weak_ptr<bool>(alive_),
                         this]() mutable {
                if (!alive.expired() && !has_failed_) done(std::move(reply));
            });
        } else {
            is_keepalive_pending_ = false;
            schedule_keepalive();
        }
    }
}

void TunnelSession::send_keepalive() {
    is_keepalive_pending_ = true;
    send_request(keepalive_request, std::string(), nullptr);
}

void TunnelSession::tick() {
    if (has_failed_) return;
    if (!is_keepalive_pending_ && Clock::now() >= next_keepalive_) send_keepalive();
    after_packets();
}

void TunnelSession::probe() {
    if (has_failed_) return;
    if (!is_keepalive_pending_) send_keepalive();
    if (!requests_.empty()) request_deadline_ = std::min(request_deadline_, Clock::now() + keepalive_.probe_timeout);
}

void TunnelSession::fail(const std::string& reason) {
    if (has_failed_) return;
    has_failed_ = true;
    loop_.remove(tunnel_->descriptor());
    std::list<PendingOpen> opens;
    opens.swap(opens_);
    for (PendingOpen& open : opens) {
        open.channel.reset();
        open.done(OpenResult{});
    }
    drained_waiters_.clear();
    requests_.clear();
    on_failure_(reason);
}

}  // namespace psi::connect
