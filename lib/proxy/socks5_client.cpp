#include "proxy/socks5_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/error.hpp"

namespace psi::proxy {

ProxyAddress parse_proxy_address(const std::string& text) {
    ProxyAddress proxy;
    proxy.text = text;
    std::string host;
    std::string port_text;
    bool is_bracketed = false;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find("]:");
        if (close == std::string::npos) throw Error("proxy address '" + text + "' is not [IPv6]:port");
        host = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
        is_bracketed = true;
    } else {
        const auto colon = text.find(':');
        if (colon == std::string::npos) throw Error("proxy address '" + text + "' has no port (HOST:PORT)");
        if (text.find(':', colon + 1) != std::string::npos)
            throw Error("proxy address '" + text + "': write an IPv6 address in brackets, [ADDRESS]:PORT");
        host = text.substr(0, colon);
        port_text = text.substr(colon + 1);
    }
    unsigned long port = 0;
    if (!port_text.empty() && port_text.size() <= 5 &&
        port_text.find_first_not_of("0123456789") == std::string::npos)
        port = std::stoul(port_text);
    if (port == 0 || port > 65535) throw Error("proxy address '" + text + "' has no valid port");
    auto* v4 = reinterpret_cast<sockaddr_in*>(&proxy.address);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&proxy.address);
    if (!is_bracketed && inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<std::uint16_t>(port));
        proxy.length = sizeof(sockaddr_in);
    } else if (is_bracketed && inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<std::uint16_t>(port));
        proxy.length = sizeof(sockaddr_in6);
    } else {
        throw Error("proxy address '" + text + "' is not a numeric IPv4 or IPv6 address");
    }
    return proxy;
}

SocksHandshake::SocksHandshake(const ProxyAddress& proxy, SocksCommand command, SocksAddress destination)
    : command_(command), destination_(std::move(destination)), proxy_text_(proxy.text) {
    socket_.reset(::socket(proxy.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket_.is_open()) {
        fail(SocksReply::general_failure, std::string("cannot create a socket: ") + std::strerror(errno));
        return;
    }
    const int on = 1;
    ::setsockopt(socket_.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (::connect(socket_.get(), reinterpret_cast<const sockaddr*>(&proxy.address), proxy.length) == 0) {
        advance();
    } else if (errno != EINPROGRESS) {
        fail(SocksReply::general_failure, "cannot reach the SOCKS proxy " + proxy_text_ + ": " + std::strerror(errno));
    }
}

std::uint32_t SocksHandshake::wanted_events() const {
    return step_ == Step::connecting ? EPOLLOUT : EPOLLIN;
}

void SocksHandshake::fail(SocksReply reply, std::string why) {
    step_ = Step::failed;
    reply_ = reply;
    failure_ = std::move(why);
}

// The greeting and the request are a few bytes on a fresh socket: the kernel takes them whole.
bool SocksHandshake::send_all(const std::string& bytes) {
    const ssize_t sent = ::send(socket_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent == static_cast<ssize_t>(bytes.size())) return true;
    fail(SocksReply::general_failure, "the SOCKS proxy " + proxy_text_ + " went away: " +
                                          (sent < 0 ? std::strerror(errno) : "short write"));
    return false;
}

bool SocksHandshake::advance() {
    if (step_ == Step::done || step_ == Step::failed) return true;
    if (step_ == Step::connecting) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(socket_.get(), SOL_SOCKET, SO_ERROR, &error, &length);
        if (error == EINPROGRESS || error == EALREADY) return false;
        if (error != 0) {
            fail(SocksReply::general_failure, "cannot reach the SOCKS proxy " + proxy_text_ + ": " + std::strerror(error));
            return true;
        }
        if (!send_all(no_authentication_greeting())) return true;
        step_ = Step::choosing_method;
        return false;
    }

    // Peek, parse, and only then take exactly the message's bytes out of the socket.
    std::array<char, 300> buffer{};
    const ssize_t peeked = ::recv(socket_.get(), buffer.data(), buffer.size(), MSG_PEEK);
    if (peeked < 0) {
        if (errno == EAGAIN || errno == EINTR) return false;
        fail(SocksReply::general_failure, "the SOCKS proxy " + proxy_text_ + " failed: " + std::strerror(errno));
        return true;
    }
    if (peeked == 0) {
        fail(SocksReply::general_failure, "the SOCKS proxy " + proxy_text_ + " closed the connection");
        return true;
    }
    const std::string_view bytes(buffer.data(), static_cast<std::size_t>(peeked));
    std::size_t consumed = 0;
    if (step_ == Step::choosing_method) {
        const auto choice = parse_method_choice(bytes);
        if (choice.status == ParseStatus::need_more) return false;
        if (choice.status == ParseStatus::malformed) {
            fail(SocksReply::general_failure, "the SOCKS proxy " + proxy_text_ + " wants authentication");
            return true;
        }
        consumed = choice.consumed;
        ::recv(socket_.get(), buffer.data(), consumed, 0);
        has_requested_ = true;
        if (!send_all(encode_request(command_, destination_))) return true;
        step_ = Step::requesting;
        return false;
    }
    const auto reply = parse_reply(bytes);
    if (reply.status == ParseStatus::need_more) return false;
    if (reply.status == ParseStatus::malformed) {
        fail(SocksReply::general_failure, "the SOCKS proxy " + proxy_text_ + " sent a malformed reply");
        return true;
    }
    ::recv(socket_.get(), buffer.data(), reply.consumed, 0);
    reply_ = reply.message.reply;
    has_reply_ = true;
    bound_ = reply.message.bound;
    if (reply_ != SocksReply::succeeded) {
        fail(reply_, std::string("the SOCKS proxy answered: ") + reply_name(reply_));
        return true;
    }
    step_ = Step::done;
    return true;
}

}  // namespace psi::proxy
