#include "core/loopback_listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace psi {
namespace {

constexpr int listen_backlog = 1024;
constexpr int free_port_attempts = 16;

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

SocketAddress loopback(int family, std::uint16_t port) {
    SocketAddress address;
    if (family == AF_INET) {
        auto& ipv4 = reinterpret_cast<sockaddr_in&>(address.storage);
        ipv4.sin_family = AF_INET;
        ipv4.sin_port = htons(port);
        ipv4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.length = sizeof ipv4;
    } else {
        auto& ipv6 = reinterpret_cast<sockaddr_in6&>(address.storage);
        ipv6.sin6_family = AF_INET6;
        ipv6.sin6_port = htons(port);
        ipv6.sin6_addr = in6addr_loopback;
        address.length = sizeof ipv6;
    }
    return address;
}

std::string who_holds(const std::string& address, std::uint16_t port) {
    for (const PortListener& listener : listeners_on_port(port))
        if (listener.address == address || listener.address == "0.0.0.0" || listener.address == "::")
            return " (uid " + std::to_string(listener.uid) + " listens there)";
    return "";
}

// The socket, or an empty one where the machine has no such address (IPv6 switched off).
UniqueFd bind_loopback(int family, std::uint16_t port) {
    const std::string name = address_and_port(family == AF_INET ? "127.0.0.1" : "::1", port);
    UniqueFd socket(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket.is_open()) {
        if (family == AF_INET6 && errno == EAFNOSUPPORT) return UniqueFd();
        throw_system_error("socket", errno);
    }
    const int one = 1;
    // Only for TIME_WAIT leftovers of our own: a socket listening there still makes bind fail.
    ::setsockopt(socket.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) ::setsockopt(socket.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    const SocketAddress address = loopback(family, port);
    if (::bind(socket.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.length) != 0) {
        const int error = errno;
        if (family == AF_INET6 && error == EADDRNOTAVAIL) return UniqueFd();
        throw Error("cannot listen on " + name + ": " + std::strerror(error) +
                    (error == EADDRINUSE ? who_holds(family == AF_INET ? "127.0.0.1" : "::1", port) : ""));
    }
    if (::listen(socket.get(), listen_backlog) != 0) throw_system_error("cannot listen on " + name, errno);
    return socket;
}

std::uint16_t bound_port(int fd) {
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
    if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port);
    if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
    return 0;
}

bool is_loopback(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr) >> 24) == 127;
    if (address.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<const sockaddr_in6&>(address).sin6_addr);
    return false;
}

int socket_option(int fd, int option) {
    int value = -1;
    socklen_t length = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, option, &value, &length) != 0) return -1;
    return value;
}

UniqueFd adopt(int fd) {
    const std::string name = "descriptor " + std::to_string(fd);
    sockaddr_storage address{};
    socklen_t length = sizeof address;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
        throw Error(name + " is not a socket: " + std::strerror(errno));
    if (socket_option(fd, SO_TYPE) != SOCK_STREAM || socket_option(fd, SO_ACCEPTCONN) != 1 || !is_loopback(address))
        throw Error(name + " is not a TCP socket listening on a loopback address");
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        throw_system_error("cannot use " + name, errno);
    return UniqueFd(fd);
}

// A /proc/net/tcp address, hex words as the kernel prints them (each in host order).
std::string proc_address(const std::string& hex) {
    unsigned char bytes[16] = {};
    const std::size_t words = hex.size() / 8;
    if ((words != 1 && words != 4) || hex.size() % 8 != 0) return "";
    for (std::size_t word = 0; word < words; ++word) {
        std::uint32_t value = 0;
        try {
            value = static_cast<std::uint32_t>(std::stoul(hex.substr(word * 8, 8), nullptr, 16));
        } catch (const std::exception&) {
            return "";
        }
        std::memcpy(bytes + word * 4, &value, 4);
    }
    char text[INET6_ADDRSTRLEN] = "";
    ::inet_ntop(words == 1 ? AF_INET : AF_INET6, bytes, text, sizeof text);
    return text;
}

void read_listeners(const std::string& path, std::uint16_t port, std::vector<PortListener>& found) {
    constexpr const char* listen_state = "0A";
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);  // the header
    while (std::getline(file, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues, timer, retransmits;
        long uid = -1;
        if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid)) continue;
        const auto colon = local.find(':');
        if (state != listen_state || colon == std::string::npos) continue;
        unsigned long local_port = 0;
        try {
            local_port = std::stoul(local.substr(colon + 1), nullptr, 16);
        } catch (const std::exception&) {
            continue;
        }
        if (local_port != port) continue;
        const std::string address = proc_address(local.substr(0, colon));
        if (!address.empty()) found.push_back({address, port, static_cast<uid_t>(uid)});
    }
}

}  // namespace

std::string address_and_port(const std::string& address, std::uint16_t port) {
    const bool is_ipv6 = address.find(':') != std::string::npos;
    return (is_ipv6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

LoopbackListeners listen_on_loopback(std::uint16_t port) {
    for (int attempt = 0;; ++attempt) {
        LoopbackListeners listeners;
        listeners.sockets.push_back(bind_loopback(AF_INET, port));
        listeners.port = bound_port(listeners.sockets.front().get());
        try {
            if (UniqueFd ipv6 = bind_loopback(AF_INET6, listeners.port); ipv6.is_open())
                listeners.sockets.push_back(std::move(ipv6));
        } catch (const Error&) {
            // A free port chosen for 127.0.0.1 that someone holds on [::1]: another one.
            if (port != 0 || attempt + 1 >= free_port_attempts) throw;
            continue;
        }
        return listeners;
    }
}

LoopbackListeners adopt_loopback_listeners(const std::vector<int>& fds) {
    LoopbackListeners listeners;
    for (int fd : fds) {
        listeners.sockets.push_back(adopt(fd));
        const std::uint16_t port = bound_port(fd);
        if (listeners.port != 0 && port != listeners.port)
            throw Error("descriptors " + std::to_string(fds.front()) + " and " + std::to_string(fd) +
                        " listen on different ports");
        listeners.port = port;
    }
    return listeners;
}

std::vector<PortListener> listeners_on_port(std::uint16_t port, const std::string& proc_net) {
    std::vector<PortListener> found;
    read_listeners(proc_net + "/tcp", port, found);
    read_listeners(proc_net + "/tcp6", port, found);
    return found;
}

}  // namespace psi
