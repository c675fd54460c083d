#include "connect/local_proxy.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.hpp"
#include "core/log.hpp"

namespace psi::connect {
namespace {

constexpr std::size_t max_request_bytes = 16 * 1024;
constexpr std::size_t max_early_bytes = 64 * 1024;
constexpr auto request_timeout = std::chrono::seconds(10);

}  // namespace

void LocalProxy::send_now(int fd, const std::string& bytes) {
    // Replies are a few bytes on a fresh socket: they fit its buffer.
    (void)!::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

LocalProxy::LocalProxy(EventLoop& loop, LoopbackListeners listeners, SessionSource session, RelayTotals& totals)
    : loop_(loop), session_(std::move(session)), totals_(totals), listeners_(std::move(listeners)) {
    watch_listeners();
}

void LocalProxy::watch_listeners() {
    for (const UniqueFd& listener : listeners_.sockets)
        loop_.add(listener.get(), EPOLLIN, [this, fd = listener.get()](std::uint32_t) { accept_clients(fd); });
    is_listening_ = true;
}

LocalProxy::~LocalProxy() {
    relays_.clear();
    for (auto& [fd, client] : clients_) loop_.remove(fd);
    if (is_listening_)
        for (const UniqueFd& listener : listeners_.sockets) loop_.remove(listener.get());
}

void LocalProxy::accept_clients(int listener_fd) {
    for (int accepted = 0; accepted < 64; ++accepted) {
        UniqueFd socket(::accept4(listener_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!socket.is_open()) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: stop accepting for a moment instead of spinning on the backlog.
                log::warning("too many connections; new ones wait");
                if (is_listening_)
                    for (const UniqueFd& listener : listeners_.sockets) loop_.remove(listener.get());
                is_listening_ = false;
            }
            return;
        }
        const int one = 1;
        ::setsockopt(socket.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const int fd = socket.get();
        Client& client = clients_[fd];
        client.socket = std::move(socket);
        client.deadline = std::chrono::steady_clock::now() + request_timeout;
        loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t events) { on_client(fd, events); });
    }
}

void LocalProxy::on_client(int fd, std::uint32_t events) {
    const auto found = clients_.find(fd);
    if (found == clients_.end()) return;
    Client& client = found->second;
    if (events & EPOLLERR) {
        drop(fd);
        return;
    }
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(fd);
        return;
    }
    if (n < 0) return;
    client.received.append(buffer, static_cast<std::size_t>(n));
    if (client.is_opening) {
        // Bytes sent before the reply (optimistic data) wait for the channel, within bounds.
        if (client.received.size() > max_early_bytes) drop(fd);
        return;
    }
    if (client.received.size() > max_request_bytes) {
        drop(fd);
        return;
    }
    advance(client);
}

void LocalProxy::start_connect(Client& client, const std::string& host, std::uint16_t port, std::string success_reply,
                               std::string upstream) {
    TunnelSession* session = session_();
    if (!session) {
        refuse(client.socket.get(), no_tunnel_reply());
        return;
    }
    log::debug("connect to " + log::personal(host) + " port " + std::to_string(port));
    const int fd = client.socket.get();
    client.received.insert(0, upstream);
    client.success_reply = std::move(success_reply);
    client.is_opening = true;
    client.session = session;
    client.open_id =
        session->open_forward(host, port, [this, fd](OpenResult result) { on_opened(fd, std::move(result)); });
}

void LocalProxy::on_opened(int fd, OpenResult result) {
    const auto found = clients_.find(fd);
    if (found == clients_.end()) return;  // the client left: its channel goes with `result`
    Client& client = found->second;
    if (!result.channel) {
        client.is_opening = false;
        refuse(fd, refusal_reply(result));
        return;
    }
    send_now(fd, client.success_reply);
    TunnelSession& session = *client.session;
    std::string early = std::move(client.received);
    auto relay = std::make_unique<ChannelRelay>(loop_, session, release(fd), std::move(result.channel),
                                                std::move(early), totals_, [this](ChannelRelay* finished) {
                                                    loop_.defer([this, finished] { relays_.erase(finished); });
                                                });
    ChannelRelay* key = relay.get();
    relays_.emplace(key, std::move(relay));
}

void LocalProxy::refuse(int fd, const std::string& reply) {
    send_now(fd, reply);
    drop(fd);
}

UniqueFd LocalProxy::release(int fd) {
    const auto found = clients_.find(fd);
    if (found == clients_.end()) return UniqueFd();
    loop_.remove(fd);
    UniqueFd socket = std::move(found->second.socket);
    clients_.erase(found);
    return socket;
}

void LocalProxy::drop(int fd) {
    const auto found = clients_.find(fd);
    if (found == clients_.end()) return;
    if (found->second.is_opening && found->second.session) found->second.session->cancel_open(found->second.open_id);
    release(fd);
    listen_again();
}

void LocalProxy::listen_again() {
    if (!is_listening_) watch_listeners();
}

void LocalProxy::close_all() {
    relays_.clear();
    std::vector<int> fds;
    for (const auto& [fd, client] : clients_) fds.push_back(fd);
    for (int fd : fds) {
        Client& client = clients_[fd];
        if (client.is_opening) {
            client.is_opening = false;  // the session is going away with its opens
            refuse(fd, no_tunnel_reply());
        } else {
            drop(fd);
        }
    }
}

void LocalProxy::tick() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<int> late;
    for (const auto& [fd, client] : clients_)
        if (!client.is_opening && now >= client.deadline) late.push_back(fd);
    for (int fd : late) drop(fd);
    listen_again();
}

}  // namespace psi::connect
