// Changes of the machine's network, as rtnetlink announces them: a link up or down, an address
// or a route added or removed. An unprivileged process may listen to these; psi-connect does, so
// that a tunnel whose uplink went away is probed at once instead of at the next keepalive.
#pragma once

#include <functional>
#include <string>

#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"

struct nlmsghdr;

namespace psi::connect {

class NetworkWatch {
public:
    // `changed` is called once per loop round in which a change arrived, but for changes of
    // loopback and of the interface `ignored` (psi's own TUN: its routes and addresses say
    // nothing about the uplink).
    NetworkWatch(EventLoop& loop, std::string ignored, std::function<void()> changed);
    ~NetworkWatch();
    NetworkWatch(const NetworkWatch&) = delete;
    NetworkWatch& operator=(const NetworkWatch&) = delete;

private:
    void on_readable();
    bool matters(const ::nlmsghdr& message) const;

    EventLoop& loop_;
    UniqueFd socket_;
    std::string ignored_;
    std::function<void()> changed_;
};

}  // namespace psi::connect
