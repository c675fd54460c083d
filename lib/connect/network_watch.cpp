#include "connect/network_watch.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>

#include "core/error.hpp"

namespace psi::connect {

NetworkWatch::NetworkWatch(EventLoop& loop, std::string ignored, std::function<void()> changed)
    : loop_(loop), ignored_(std::move(ignored)), changed_(std::move(changed)) {
    socket_.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE));
    if (!socket_.is_open()) throw_system_error("cannot watch the network (netlink)", errno);
    sockaddr_nl address{};
    address.nl_family = AF_NETLINK;
    address.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    if (::bind(socket_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw_system_error("cannot watch the network (netlink bind)", errno);
    loop_.add(socket_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(); });
}

NetworkWatch::~NetworkWatch() {
    if (loop_.contains(socket_.get())) loop_.remove(socket_.get());
}

namespace {

// The interface a link, address or route message is about; 0 when it names none.
int interface_of(const nlmsghdr& message) {
    switch (message.nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK:
            if (message.nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg)))
                return static_cast<const ifinfomsg*>(NLMSG_DATA(&message))->ifi_index;
            return 0;
        case RTM_NEWADDR:
        case RTM_DELADDR:
            if (message.nlmsg_len >= NLMSG_LENGTH(sizeof(ifaddrmsg)))
                return static_cast<int>(static_cast<const ifaddrmsg*>(NLMSG_DATA(&message))->ifa_index);
            return 0;
        case RTM_NEWROUTE:
        case RTM_DELROUTE: {
            if (message.nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return 0;
            const auto* route = static_cast<const rtmsg*>(NLMSG_DATA(&message));
            int length = static_cast<int>(RTM_PAYLOAD(&message));
            for (const rtattr* attribute = RTM_RTA(route); RTA_OK(attribute, length);
                 attribute = RTA_NEXT(attribute, length))
                if (attribute->rta_type == RTA_OIF && RTA_PAYLOAD(attribute) >= sizeof(int))
                    return *static_cast<const int*>(RTA_DATA(attribute));
            return 0;
        }
        default:
            return 0;
    }
}

}  // namespace

bool NetworkWatch::matters(const nlmsghdr& message) const {
    const int index = interface_of(message);
    if (index == 0) return true;
    char name[IF_NAMESIZE] = {};
    // A deleted interface has no name any more: its going matters (it may be the uplink).
    if (!::if_indextoname(static_cast<unsigned>(index), name)) return true;
    return std::string(name) != "lo" && name != ignored_;
}

void NetworkWatch::on_readable() {
    // Which change it was does not matter, as long as it is not loopback's or the TUN's: any
    // of the others may have cut the tunnel's path. An overrun (ENOBUFS) means changes were
    // lost, which is a change too.
    alignas(nlmsghdr) char buffer[8192];
    bool is_changed = false;
    for (;;) {
        const ssize_t n = ::recv(socket_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0 && errno == ENOBUFS) {
            is_changed = true;
            continue;
        }
        if (n <= 0) break;
        int length = static_cast<int>(n);
        for (const auto* message = reinterpret_cast<const nlmsghdr*>(buffer); NLMSG_OK(message, length);
             message = NLMSG_NEXT(message, length))
            is_changed = is_changed || matters(*message);
    }
    if (is_changed) changed_();
}

}  // namespace psi::connect
