// The listening sockets of psi's local proxies: a port on 127.0.0.1 and on [::1] both, so that
// no other local user can take either side of it (an application that tries localhost's
// addresses in turn would reach theirs). psi up binds them as root and holds them for its whole
// run, handing them down to each psi-connect, so that a port is never free while psi-connect
// restarts; the owners of listening sockets, for psi-diagnose and for the message when a port is
// taken.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/unique_fd.hpp"

namespace psi {

struct LoopbackListeners {
    std::vector<UniqueFd> sockets;  // 127.0.0.1, then [::1] where the machine has IPv6
    std::uint16_t port = 0;
};

// Binds 127.0.0.1:port and [::1]:port, listening, non-blocking, close-on-exec; port 0 picks one
// that is free on both. A machine without IPv6 gets the IPv4 socket only: no one can bind [::1]
// there either. Throws psi::Error naming the address, and its owner, when one is taken.
LoopbackListeners listen_on_loopback(std::uint16_t port);

// Descriptors handed down by the parent (psi-connect --socks-fd): each must be a listening TCP
// socket on a loopback address, all on one port; made non-blocking and close-on-exec. Throws
// psi::Error saying which descriptor is not.
LoopbackListeners adopt_loopback_listeners(const std::vector<int>& fds);

// A TCP socket listening on a port, from /proc/net/tcp and tcp6 (this network namespace).
struct PortListener {
    std::string address;  // "127.0.0.1", "::1", "0.0.0.0", ...
    std::uint16_t port = 0;
    uid_t uid = 0;
};
std::vector<PortListener> listeners_on_port(std::uint16_t port, const std::string& proc_net = "/proc/net");

// "[::1]:1081" or "127.0.0.1:1081".
std::string address_and_port(const std::string& address, std::uint16_t port);

}  // namespace psi
