#include "fw/leak_probe.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/privileges.hpp"
#include "core/unique_fd.hpp"
#include "fw/table_state.hpp"

namespace psi::fw {
namespace {

constexpr int timeout_ms = 1000;

// What a probe saw, passed from the unprivileged child as its exit status.
enum Outcome : int {
    answered = 10,       // connected, or a DNS reply came back
    refused_locally = 11,  // an error that the kill switch's reject rules produce
    no_route = 12,
    timed_out = 13,
    other_error = 14,
};

struct Probe {
    const char* name;
    int family;
    bool is_dns;
};

constexpr std::array probes = {
    Probe{"tcp-ipv4", AF_INET, false}, Probe{"tcp-ipv6", AF_INET6, false},
    Probe{"dns-ipv4", AF_INET, true}, Probe{"dns-ipv6", AF_INET6, true},
};

// A DNS query for "example.com" A.
constexpr unsigned char dns_query[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                       0x00, 0x07, 'e',  'x',  'a',  'm',  'p',  'l',  'e',  0x03, 'c',
                                       'o',  'm',  0x00, 0x00, 0x01, 0x00, 0x01};

sockaddr_storage make_address(int family, const std::string& text, std::uint16_t port, socklen_t& length) {
    sockaddr_storage address{};
    if (family == AF_INET) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) != 1)
            throw Error("--probe-ipv4: not an IPv4 address: " + text, exit_status::usage);
        length = sizeof(sockaddr_in);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) != 1)
            throw Error("--probe-ipv6: not an IPv6 address: " + text, exit_status::usage);
        length = sizeof(sockaddr_in6);
    }
    return address;
}

Outcome classify(int error) {
    switch (error) {
        case ECONNREFUSED: case EHOSTUNREACH: case EACCES: case EPERM: return refused_locally;
        case ENETUNREACH: case EADDRNOTAVAIL: return no_route;
        default: return other_error;
    }
}

bool wait_for(int fd, short events) {
    pollfd entry{fd, events, 0};
    int ready;
    while ((ready = ::poll(&entry, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    return ready > 0;
}

Outcome probe_once(const Probe& probe, const sockaddr_storage& address, socklen_t length,
                   const std::string& device) {
    UniqueFd fd(::socket(probe.family, (probe.is_dns ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0));
    if (!fd.is_open()) return other_error;
    if (!device.empty() &&
        ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), static_cast<socklen_t>(device.size())) != 0)
        return other_error;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0 && errno != EINPROGRESS)
        return classify(errno);
    if (probe.is_dns) {
        if (::send(fd.get(), dns_query, sizeof dns_query, 0) < 0) return classify(errno);
        if (!wait_for(fd.get(), POLLIN)) return timed_out;
        char reply[512];
        return ::recv(fd.get(), reply, sizeof reply, 0) < 0 ? classify(errno) : answered;
    }
    if (!wait_for(fd.get(), POLLOUT)) return timed_out;
    int error = 0;
    socklen_t error_length = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &error_length);
    return error == 0 ? answered : classify(error);
}

Outcome run_as_user(const UserIdentity& user, const Probe& probe, const sockaddr_storage& address,
                    socklen_t length, const std::string& device) {
    pid_t child = ::fork();
    if (child < 0) throw_system_error("cannot fork a probe", errno);
    if (child == 0) {
        int outcome = other_error;
        try {
            drop_privileges(user);
            outcome = probe_once(probe, address, length, device);
        } catch (const std::exception&) {
        }
        ::_exit(outcome);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? static_cast<Outcome>(WEXITSTATUS(status)) : other_error;
}

std::vector<std::string> uplinks(const std::string& tun_name) {
    std::vector<std::string> names;
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct if_nameindex* interfaces = ::if_nameindex();
    if (!interfaces || !fd.is_open()) return names;
    for (struct if_nameindex* entry = interfaces; entry->if_index != 0; ++entry) {
        std::string name = entry->if_name;
        if (name == "lo" || name == tun_name) continue;
        ifreq request{};
        std::strncpy(request.ifr_name, entry->if_name, IFNAMSIZ - 1);
        if (::ioctl(fd.get(), SIOCGIFFLAGS, &request) == 0 && (request.ifr_flags & IFF_UP)) names.push_back(name);
    }
    ::if_freenameindex(interfaces);
    return names;
}

std::uint64_t counted_rejections() {
    auto table = read_kernel_table();
    return table ? rejected_packets(*table) : 0;
}

ProbeResult judge(const Probe& probe, const std::string& device, Outcome outcome, bool was_counted) {
    ProbeResult result{probe.name, device, false, ""};
    switch (outcome) {
        case answered: result.verdict = "answered: traffic leaves outside the tunnel"; break;
        case timed_out:
            // Bound to a link without an address, the kill switch's reset cannot come back;
            // the counter still proves the packet was stopped here.
            result.passed = was_counted;
            result.verdict = was_counted ? "rejected by the kill switch"
                                         : "no answer within 1 s: packets may have left (a kill switch rejects at once)";
            break;
        case no_route:
            result.passed = true;
            result.verdict = "no route: nothing can leave";
            break;
        case refused_locally:
            result.passed = was_counted;
            result.verdict = was_counted ? "rejected by the kill switch"
                                         : "refused, but not by the kill switch: a packet may have left";
            break;
        case other_error: result.verdict = "the probe could not run"; break;
    }
    return result;
}

}  // namespace

std::vector<ProbeResult> run_leak_probes(const ProbeTargets& targets, const std::string& tun_name) {
    const UserIdentity user = lookup_user(targets.probe_user);
    if (user.uid == 0) throw Error("--probe-user: the probes must run as a user other than root", exit_status::usage);
    socklen_t unused = 0;
    make_address(AF_INET, targets.ipv4, 0, unused);
    make_address(AF_INET6, targets.ipv6, 0, unused);
    std::vector<std::string> devices{""};
    for (const std::string& name : uplinks(tun_name)) devices.push_back(name);

    std::vector<ProbeResult> results;
    for (const std::string& device : devices) {
        for (const Probe& probe : probes) {
            socklen_t length = 0;
            const std::string& target = probe.family == AF_INET ? targets.ipv4 : targets.ipv6;
            sockaddr_storage address = make_address(probe.family, target, probe.is_dns ? 53 : targets.tcp_port, length);
            std::uint64_t before = counted_rejections();
            Outcome outcome = run_as_user(user, probe, address, length, device);
            bool was_counted = counted_rejections() > before;
            results.push_back(judge(probe, device, outcome, was_counted));
        }
    }
    return results;
}

}  // namespace psi::fw
