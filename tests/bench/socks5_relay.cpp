// The benchmarks' fast SOCKS5 proxy (docs/packet-engine.md §5, stand-in 1): CONNECT only, no authentication,
// IPv4 and IPv6 addresses, one thread over psi's epoll loop, bytes moved by psi::tun::Relay
// (splice). It isolates the TUN layer: whatever it costs, the TUN path and the SOCKS-only path
// pay it alike. Usage: socks5_relay LISTEN_ADDRESS:PORT (e.g. 127.0.0.1:1080)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/error.hpp"
#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"
#include "engine/relay.hpp"
#include "proxy/socks5.hpp"
#include "proxy/socks5_client.hpp"

namespace {

using psi::EventLoop;
using psi::UniqueFd;
namespace proxy = psi::proxy;

void set_no_delay(int fd) {
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

// A whole small message on a fresh socket, whose send buffer is empty: all of it or nothing.
bool send_all(int fd, const std::string& bytes) {
    return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

proxy::SocksReply reply_for(int error) {
    switch (error) {
        case ECONNREFUSED: return proxy::SocksReply::connection_refused;
        case ENETUNREACH: return proxy::SocksReply::network_unreachable;
        case EHOSTUNREACH: return proxy::SocksReply::host_unreachable;
        case ETIMEDOUT: return proxy::SocksReply::ttl_expired;
        default: return proxy::SocksReply::general_failure;
    }
}

proxy::SocksAddress address_of(const sockaddr_storage& storage) {
    proxy::SocksAddress address;
    char text[INET6_ADDRSTRLEN] = {};
    if (storage.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(storage);
        address.type = proxy::AddressType::ipv6;
        ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
        address.port = ntohs(v6.sin6_port);
    } else {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(storage);
        ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
        address.port = ntohs(v4.sin_port);
    }
    address.host = text;
    return address;
}

class Server;

// One client: greeting, request, connect to the destination, then a Relay.
class Session {
public:
    Session(Server& server, UniqueFd client);
    ~Session();

private:
    enum class Stage { greeting, request, connecting, relaying };

    void on_client(std::uint32_t events);
    void on_upstream(std::uint32_t events);
    void start_connect(const proxy::SocksAddress& destination);
    void refuse(proxy::SocksReply reply);
    void close();

    Server& server_;
    EventLoop& loop_;
    UniqueFd client_, upstream_;
    std::string received_;
    Stage stage_ = Stage::greeting;
    std::unique_ptr<psi::engine::Relay> relay_;
};

class Server {
public:
    Server(EventLoop& loop, const proxy::ProxyAddress& listen) : loop_(loop) {
        listener_.reset(::socket(listen.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!listener_.is_open()) psi::throw_system_error("socket", errno);
        const int on = 1;
        ::setsockopt(listener_.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&listen.address), listen.length) != 0)
            psi::throw_system_error("bind " + listen.text, errno);
        if (::listen(listener_.get(), 1024) != 0) psi::throw_system_error("listen", errno);
        loop_.add(listener_.get(), EPOLLIN, [this](std::uint32_t) { accept_all(); });
    }

    EventLoop& loop() { return loop_; }
    psi::engine::RelayCounters& counters() { return counters_; }
    void forget(Session* session) { sessions_.erase(session); }

private:
    void accept_all() {
        for (;;) {
            UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!client.is_open()) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
                if (errno == EMFILE || errno == ENFILE) {
                    std::fprintf(stderr, "socks5_relay: accept: %s\n", std::strerror(errno));
                    return;
                }
                psi::throw_system_error("accept", errno);
            }
            set_no_delay(client.get());
            auto session = std::make_unique<Session>(*this, std::move(client));
            Session* key = session.get();
            sessions_.emplace(key, std::move(session));
        }
    }

    EventLoop& loop_;
    UniqueFd listener_;
    psi::engine::RelayCounters counters_;
    std::unordered_map<Session*, std::unique_ptr<Session>> sessions_;
};

Session::Session(Server& server, UniqueFd client)
    : server_(server), loop_(server.loop()), client_(std::move(client)) {
    loop_.add(client_.get(), EPOLLIN, [this](std::uint32_t events) { on_client(events); });
}

Session::~Session() {
    if (client_.is_open()) loop_.remove(client_.get());
    if (upstream_.is_open()) loop_.remove(upstream_.get());
}

void Session::on_client(std::uint32_t) {
    char buffer[1024];
    const ssize_t count = ::recv(client_.get(), buffer, sizeof buffer, 0);
    if (count < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (count <= 0) return close();
    received_.append(buffer, static_cast<std::size_t>(count));
    if (stage_ == Stage::greeting) {
        const auto greeting = proxy::parse_greeting(received_);
        if (greeting.status == proxy::ParseStatus::need_more) return;
        const bool is_accepted =
            greeting.status == proxy::ParseStatus::complete && greeting.message.offers_no_authentication;
        if (!send_all(client_.get(), proxy::greeting_reply(is_accepted)) || !is_accepted) return close();
        received_.erase(0, greeting.consumed);
        stage_ = Stage::request;
    }
    if (stage_ != Stage::request) return;
    const auto request = proxy::parse_request(received_);
    if (request.status == proxy::ParseStatus::need_more) return;
    if (request.status == proxy::ParseStatus::malformed) return refuse(request.error);
    if (request.message.command != proxy::SocksCommand::connect) return refuse(proxy::SocksReply::command_not_supported);
    if (request.message.destination.type == proxy::AddressType::domain)
        return refuse(proxy::SocksReply::address_type_not_supported);
    received_.erase(0, request.consumed);
    start_connect(request.message.destination);
}

void Session::start_connect(const proxy::SocksAddress& destination) {
    sockaddr_storage address{};
    socklen_t length = 0;
    if (destination.type == proxy::AddressType::ipv6) {
        auto& v6 = reinterpret_cast<sockaddr_in6&>(address);
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(destination.port);
        ::inet_pton(AF_INET6, destination.host.c_str(), &v6.sin6_addr);
        length = sizeof v6;
    } else {
        auto& v4 = reinterpret_cast<sockaddr_in&>(address);
        v4.sin_family = AF_INET;
        v4.sin_port = htons(destination.port);
        ::inet_pton(AF_INET, destination.host.c_str(), &v4.sin_addr);
        length = sizeof v4;
    }
    upstream_.reset(::socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!upstream_.is_open()) return refuse(proxy::SocksReply::general_failure);
    set_no_delay(upstream_.get());
    if (::connect(upstream_.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0 && errno != EINPROGRESS)
        return refuse(reply_for(errno));
    stage_ = Stage::connecting;
    loop_.modify(client_.get(), 0);  // the client waits for the reply
    loop_.add(upstream_.get(), EPOLLOUT, [this](std::uint32_t events) { on_upstream(events); });
}

void Session::on_upstream(std::uint32_t) {
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(upstream_.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error == EINPROGRESS) return;
    if (error != 0) return refuse(reply_for(error));
    sockaddr_storage bound{};
    socklen_t bound_length = sizeof bound;
    ::getsockname(upstream_.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length);
    if (!send_all(client_.get(), proxy::request_reply(proxy::SocksReply::succeeded, address_of(bound)))) return close();
    // Bytes the client sent after its request, before our reply.
    if (!received_.empty() && !send_all(upstream_.get(), received_)) return close();
    loop_.remove(client_.get());
    loop_.remove(upstream_.get());
    stage_ = Stage::relaying;
    relay_ = std::make_unique<psi::engine::Relay>(loop_, std::move(client_), std::move(upstream_), server_.counters(),
                                                  [this](psi::engine::Relay::Outcome) { close(); });
}

void Session::refuse(proxy::SocksReply reply) {
    send_all(client_.get(), proxy::request_reply(reply));
    close();
}

// Destroys this session (and its relay); nothing may touch members after the call.
void Session::close() { server_.forget(this); }

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: socks5_relay LISTEN_ADDRESS:PORT\n");
        return 2;
    }
    try {
        ::signal(SIGPIPE, SIG_IGN);
        EventLoop loop;
        Server server(loop, proxy::parse_proxy_address(argv[1]));
        std::printf("listening on %s\n", argv[1]);
        std::fflush(stdout);
        loop.run();
    } catch (const psi::Error& error) {
        std::fprintf(stderr, "socks5_relay: %s\n", error.what());
        return 1;
    }
    return 0;
}
