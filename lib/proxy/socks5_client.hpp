// A SOCKS5 client request on a non-blocking socket, advanced by an event loop: connect to the
// proxy, offer "no authentication", send the request, read the reply. The reply is consumed
// exactly, so bytes the far end sends at once stay in the socket for the relay.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "core/unique_fd.hpp"
#include "proxy/socks5.hpp"

namespace psi::proxy {

struct ProxyAddress {
    sockaddr_storage address{};
    socklen_t length = 0;
    std::string text;  // "127.0.0.1:1080", for messages
};

// "127.0.0.1:1080", "[::1]:1080" (IPv6 only in brackets); throws psi::Error when it is not a
// numeric address and a port of digits from 1 to 65535.
ProxyAddress parse_proxy_address(const std::string& text);

class SocksHandshake {
public:
    enum class Step { connecting, choosing_method, requesting, done, failed };

    SocksHandshake(const ProxyAddress& proxy, SocksCommand command, SocksAddress destination);

    int fd() const { return socket_.get(); }
    // EPOLLOUT while the connect is in progress, EPOLLIN while waiting for the proxy.
    std::uint32_t wanted_events() const;
    // Moves on after readiness; true once it has finished, one way or the other.
    bool advance();

    Step step() const { return step_; }
    bool succeeded() const { return step_ == Step::done; }
    SocksReply reply() const { return reply_; }
    // Whether the failure is the proxy's reply (and not the proxy being unreachable or broken).
    bool has_proxy_refused() const { return step_ == Step::failed && has_reply_; }
    // Whether it failed after the proxy accepted the greeting: at the request itself, which a
    // proxy without the command may answer by closing the connection (OpenSSH and UDP ASSOCIATE).
    bool has_failed_at_request() const { return step_ == Step::failed && has_requested_; }
    const SocksAddress& bound() const { return bound_; }
    const std::string& failure() const { return failure_; }  // why it failed, for a log line
    UniqueFd release() { return std::move(socket_); }

private:
    void fail(SocksReply reply, std::string why);
    bool send_all(const std::string& bytes);

    UniqueFd socket_;
    Step step_ = Step::connecting;
    SocksCommand command_;
    SocksAddress destination_;
    std::string proxy_text_;
    SocksReply reply_ = SocksReply::general_failure;
    SocksAddress bound_;
    std::string failure_;
    bool has_reply_ = false;
    bool has_requested_ = false;
};

}  // namespace psi::proxy
