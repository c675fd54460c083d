#include "fw/watchdog.hpp"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>

#include "core/error.hpp"
#include "core/event_loop.hpp"
#include "core/log.hpp"
#include "core/signals.hpp"
#include "core/unique_fd.hpp"
#include "fw/kill_switch.hpp"

namespace psi::fw {
namespace {

using namespace std::chrono_literals;

UniqueFd open_nftables_events() {
    UniqueFd socket(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER));
    if (!socket.is_open()) throw_system_error("cannot open a netlink socket", errno);
    sockaddr_nl address{};
    address.nl_family = AF_NETLINK;
    if (::bind(socket.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        throw_system_error("cannot bind the netlink socket", errno);
    const int group = NFNLGRP_NFTABLES;
    if (::setsockopt(socket.get(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0)
        throw_system_error("cannot listen to nftables events", errno);
    return socket;
}

// Reads every queued event; what they say does not matter: the table is checked whole.
void drain(int socket) {
    std::array<char, 65536> buffer{};
    while (::recv(socket, buffer.data(), buffer.size(), 0) > 0 || errno == ENOBUFS) {
    }
}

}  // namespace

// The tunnel policy names its user; while that user does not exist (deleted, say) it cannot be
// loaded, and the blocked policy is kept instead of whatever someone else left in place.
Mode Watchdog::policy_to_keep() {
    if (mode_ == Mode::blocked) return mode_;
    try {
        make_policy(config_, Mode::tunnel);
        is_fallback_reported_ = false;
        return Mode::tunnel;
    } catch (const Error& error) {
        if (!is_fallback_reported_) log::error(std::string(error.what()) + "; keeping the blocked policy instead");
        is_fallback_reported_ = true;
        return Mode::blocked;
    }
}

bool Watchdog::restore_if_needed(bool is_first) {
    const Mode mode = policy_to_keep();
    KillSwitch kill_switch(config_);
    const KillSwitchStatus status = kill_switch.status();
    if (status.is_intact() && status.mode == mode) return false;
    kill_switch.apply(mode);
    if (is_first) return true;
    ++restorations_;
    if (!status.is_loaded)
        log::warning(std::string("the kill switch was removed by someone else; restored (") + mode_name(mode) + ")");
    else
        log::warning("the kill switch was changed by someone else (" + (status.differences.empty()
                                                                            ? std::string("its policy")
                                                                            : status.differences.front()) +
                     "); restored");
    return true;
}

int Watchdog::run() {
    UniqueFd signal_fd = receive_signals({SIGTERM, SIGINT, SIGHUP});

    // Failing to restore (a kernel that refuses the table) is logged and tried again on the
    // next event or tick; the watchdog itself never gives up while it runs, not even at start.
    bool is_first = true;
    const auto check = [this, &is_first] {
        try {
            restore_if_needed(is_first);
        } catch (const std::exception& error) {
            log::error(std::string("cannot restore the kill switch: ") + error.what());
        }
        is_first = false;
    };
    // Listen first, then load: a change between the two is not missed.
    const UniqueFd events = open_nftables_events();
    check();
    log::info(std::string("watching the kill switch (") + mode_name(mode_) + ")");

    EventLoop loop;
    // The events of our own restoration are drained; a check after them catches a change that
    // someone made meanwhile, whose events went with ours.
    loop.add(events.get(), EPOLLIN, [&](std::uint32_t) {
        drain(events.get());
        check();
        drain(events.get());
        check();
    });
    loop.every(5000ms, check);
    loop.add(signal_fd.get(), EPOLLIN, [&](std::uint32_t) {
        signalfd_siginfo info{};
        while (::read(signal_fd.get(), &info, sizeof info) == sizeof info)
            if (info.ssi_signo != SIGHUP) loop.stop();
    });
    loop.run();
    log::info("stopped watching; the kill switch stays (restored " + std::to_string(restorations_) + " time" +
              (restorations_ == 1 ? "" : "s") + ")");
    return exit_status::ok;
}

}  // namespace psi::fw
