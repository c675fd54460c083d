#include "connect/tcp_connect.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "connect/dial_error.hpp"
#include "core/error.hpp"

namespace psi::connect {
namespace {

sockaddr_storage server_address(const std::string& ip, int port, socklen_t& length) {
    sockaddr_storage storage{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<std::uint16_t>(port));
        length = sizeof *v4;
    } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<std::uint16_t>(port));
        length = sizeof *v6;
    } else {
        throw Error("the entry's ipAddress is not an IP address");
    }
    return storage;
}

}  // namespace

UniqueFd connect_tcp(const TransportRequest& request) {
    const std::optional<int> port = request.entry.dial_port(request.protocol);
    if (!port) throw Error("the entry has no " + request.protocol + " port");
    socklen_t length = 0;
    const sockaddr_storage address = server_address(request.entry.ip_address(), *port, length);
    UniqueFd socket(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket.is_open()) throw Error(std::string("socket: ") + std::strerror(errno));
    request.cancellation.watch(socket.get());
    const int one = 1;
    ::setsockopt(socket.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Data unacknowledged this long ends the connection: a tunnel whose path died under traffic
    // fails in 30 s, as an idle one does by its keepalive, not after TCP's 15 minutes of retries.
    const unsigned user_timeout_ms = 30000;
    ::setsockopt(socket.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
    if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0 && errno != EINPROGRESS)
        throw DialError(failure_of_errno(errno), std::string("TCP: ") + std::strerror(errno));
    pollfd pending{socket.get(), POLLOUT, 0};
    const int ready = ::poll(&pending, 1, request.milliseconds_left());
    request.cancellation.throw_if_cancelled();
    if (ready == 0) throw DialError(servers::FailureClass::timeout, "TCP: no answer in time");
    int error = 0;
    socklen_t error_length = sizeof error;
    ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &error_length);
    if (ready < 0) throw Error(std::string("TCP: ") + std::strerror(errno));
    if (error != 0) throw DialError(failure_of_errno(error), std::string("TCP: ") + std::strerror(error));
    return socket;
}

}  // namespace psi::connect
