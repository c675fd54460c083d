#include "connect/socks_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"
#include "proxy/socks5.hpp"

namespace psi::connect {
namespace {

constexpr std::size_t max_request_bytes = 512;
constexpr auto request_timeout = std::chrono::seconds(10);

void send_now(int fd, const std::string& bytes) {
    // Replies are a few bytes on a fresh socket: they fit its buffer.
    (void)!::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

UniqueFd listen_on_loopback(std::uint16_t port, std::uint16_t& bound_port) {
    UniqueFd socket(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket.is_open()) throw_system_error("socket", errno);
    const int one = 1;
    ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        throw Error("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(errno));
    if (::listen(socket.get(), 1024) != 0) throw_system_error("listen", errno);
    socklen_t length = sizeof address;
    ::getsockname(socket.get(), reinterpret_cast<sockaddr*>(&address), &length);
    bound_port = ntohs(address.sin_port);
    return socket;
}

SocksServer::SocksServer(EventLoop& loop, std::uint16_t port, SessionSource session, RelayTotals& totals,
                         bool is_udp_enabled)
    : loop_(loop),
      session_(std::move(session)),
      totals_(totals),
      listener_(listen_on_loopback(port, port_)),
      is_udp_enabled_(is_udp_enabled) {
    loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_clients(); });
}

SocksServer::~SocksServer() {
    close_all();
    loop_.remove(listener_.get());
}

void SocksServer::accept_clients() {
    for (int accepted = 0; accepted < 64; ++accepted) {
        UniqueFd socket(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!socket.is_open()) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors: stop accepting for a moment instead of spinning on the backlog.
                log::warning("too many connections; new ones wait");
                loop_.remove(listener_.get());
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

void SocksServer::on_client(int fd, std::uint32_t events) {
    const auto found = clients_.find(fd);
    if (found == clients_.end()) return;
    Client& client = found->second;
    if (events & EPOLLERR) {
        drop(fd);
        return;
    }
    char buffer[max_request_bytes];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        drop(fd);
        return;
    }
    if (n < 0) return;
    client.received.append(buffer, static_cast<std::size_t>(n));
    if (client.is_opening) {
        // Bytes sent before the reply (optimistic data) wait for the channel, within bounds.
        if (client.received.size() > 64 * 1024) drop(fd);
        return;
    }
    advance(client);
}

void SocksServer::advance(Client& client) {
    const int fd = client.socket.get();
    if (!client.is_greeted) {
        const auto greeting = proxy::parse_greeting(client.received);
        if (greeting.status == proxy::ParseStatus::need_more) {
            if (client.received.size() > max_request_bytes) drop(fd);
            return;
        }
        if (greeting.status == proxy::ParseStatus::malformed || !greeting.message.offers_no_authentication) {
            send_now(fd, proxy::greeting_reply(false));
            drop(fd);
            return;
        }
        send_now(fd, proxy::greeting_reply(true));
        client.received.erase(0, greeting.consumed);
        client.is_greeted = true;
    }
    const auto request = proxy::parse_request(client.received);
    if (request.status == proxy::ParseStatus::need_more) {
        if (client.received.size() > max_request_bytes) refuse(fd, proxy::SocksReply::general_failure);
        return;
    }
    if (request.status == proxy::ParseStatus::malformed) {
        refuse(fd, request.error);
        return;
    }
    client.received.erase(0, request.consumed);
    if (request.message.command == proxy::SocksCommand::udp_associate && is_udp_enabled_) {
        start_udp(client);
        return;
    }
    if (request.message.command != proxy::SocksCommand::connect) {
        refuse(fd, proxy::SocksReply::command_not_supported);
        return;
    }
    start_connect(client, request.message.destination.host, request.message.destination.port);
}

void SocksServer::start_connect(Client& client, const std::string& host, std::uint16_t port) {
    TunnelSession* session = session_();
    if (!session) {
        refuse(client.socket.get(), proxy::SocksReply::network_unreachable);
        return;
    }
    log::debug("CONNECT " + log::personal(host) + " port " + std::to_string(port));
    const int fd = client.socket.get();
    client.is_opening = true;
    client.session = session;
    client.open_id = session->open_forward(host, port, [this, fd](OpenResult result) { on_opened(fd, result); });
}

void SocksServer::start_udp(Client& client) {
    const int fd = client.socket.get();
    TunnelSession* session = session_();
    if (!session) {
        refuse(fd, proxy::SocksReply::network_unreachable);
        return;
    }
    if (!udpgw_ || udpgw_session_ != session) {
        udpgw_.reset();
        udpgw_ = std::make_unique<UdpgwMux>(loop_, *session);
        udpgw_session_ = session;
    }
    loop_.remove(fd);
    UniqueFd control = std::move(client.socket);
    clients_.erase(fd);
    std::unique_ptr<UdpAssociation> association;
    try {
        association = std::make_unique<UdpAssociation>(loop_, *udpgw_, std::move(control), [this](UdpAssociation* done) {
            loop_.defer([this, done] { associations_.erase(done); });
        });
    } catch (const Error& error) {
        log::warning(error.what());
        return;  // the control connection went with the failed association: the client sees it close
    }
    proxy::SocksAddress bound{proxy::AddressType::ipv4, "127.0.0.1", association->port()};
    send_now(fd, proxy::request_reply(proxy::SocksReply::succeeded, bound));
    UdpAssociation* key = association.get();
    associations_.emplace(key, std::move(association));
}

void SocksServer::on_opened(int fd, OpenResult result) {
    const auto found = clients_.find(fd);
    if (found == clients_.end()) {
        if (result.channel) ssh_channel_free(result.channel);
        return;
    }
    Client& client = found->second;
    if (!result.channel) {
        refuse(fd, result.reply);
        return;
    }
    send_now(fd, proxy::request_reply(proxy::SocksReply::succeeded));
    loop_.remove(fd);
    auto relay = std::make_unique<ChannelRelay>(
        loop_, *client.session, std::move(client.socket), result.channel, std::move(client.received), totals_,
        [this](ChannelRelay* finished) {
            loop_.defer([this, finished] { relays_.erase(finished); });
        });
    ChannelRelay* key = relay.get();
    relays_.emplace(key, std::move(relay));
    clients_.erase(found);
}

void SocksServer::refuse(int fd, proxy::SocksReply reply) {
    send_now(fd, proxy::request_reply(reply));
    drop(fd);
}

void SocksServer::drop(int fd) {
    const auto found = clients_.find(fd);
    if (found == clients_.end()) return;
    if (found->second.is_opening && found->second.session) found->second.session->cancel_open(found->second.open_id);
    loop_.remove(fd);
    clients_.erase(found);
    if (!is_listening_) {
        loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_clients(); });
        is_listening_ = true;
    }
}

void SocksServer::close_all() {
    relays_.clear();
    associations_.clear();
    udpgw_.reset();
    udpgw_session_ = nullptr;
    std::vector<int> fds;
    for (const auto& [fd, client] : clients_) fds.push_back(fd);
    for (int fd : fds) {
        if (clients_[fd].is_opening) {
            clients_[fd].is_opening = false;  // the session is going away with its opens
            refuse(fd, proxy::SocksReply::general_failure);
        } else {
            drop(fd);
        }
    }
}

void SocksServer::tick() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<int> late;
    for (const auto& [fd, client] : clients_)
        if (!client.is_opening && now >= client.deadline) late.push_back(fd);
    for (int fd : late) drop(fd);
    if (!is_listening_) {
        loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_clients(); });
        is_listening_ = true;
    }
}

}  // namespace psi::connect
