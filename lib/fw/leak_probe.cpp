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
#include "core/log.hpp"
#include "core/privileges.hpp"
#include "core/unique_fd.hpp"
#include "fw/nft_context.hpp"
#include "fw/table_state.hpp"

namespace psi::fw {
namespace {

constexpr int timeout_ms = 1000;
constexpr int tunnel_timeout_ms = 5000;  // a query through a real tunnel crosses the world

// What a probe saw, passed from the unprivileged child as its exit status.
enum Outcome : int {
    answered = 10,       // connected, or a DNS reply came back
    refused_locally = 11,  // an error that the kill switch's reject rules produce
    no_route = 12,
    timed_out = 13,
    other_error = 14,
};

enum class Kind { tcp, udp, dns };

struct Probe {
    const char* name;
    int family;
    Kind kind;
};

constexpr std::array probes = {
    Probe{"tcp-ipv4", AF_INET, Kind::tcp}, Probe{"tcp-ipv6", AF_INET6, Kind::tcp},
    Probe{"udp-ipv4", AF_INET, Kind::udp}, Probe{"udp-ipv6", AF_INET6, Kind::udp},
    Probe{"dns-ipv4", AF_INET, Kind::dns}, Probe{"dns-ipv6", AF_INET6, Kind::dns},
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

bool wait_for(int fd, short events, int timeout) {
    pollfd entry{fd, events, 0};
    int ready;
    while ((ready = ::poll(&entry, 1, timeout)) < 0 && errno == EINTR) {
    }
    return ready > 0;
}

// A UDP probe sends the same bytes as a DNS one: to a port other than 53 they are just a datagram.
Outcome probe_once(const Probe& probe, const sockaddr_storage& address, socklen_t length,
                   const std::string& device, int timeout) {
    const bool is_datagram = probe.kind != Kind::tcp;
    UniqueFd fd(::socket(probe.family, (is_datagram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0));
    if (!fd.is_open()) return other_error;
    if (!device.empty() &&
        ::setsockopt(fd.get(), SOL_SOCKET, SO_BINDTODEVICE, device.c_str(), static_cast<socklen_t>(device.size())) != 0)
        return other_error;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0 && errno != EINPROGRESS)
        return classify(errno);
    if (is_datagram) {
        if (::send(fd.get(), dns_query, sizeof dns_query, 0) < 0) return classify(errno);
        if (!wait_for(fd.get(), POLLIN, timeout)) return timed_out;
        char reply[512];
        return ::recv(fd.get(), reply, sizeof reply, 0) < 0 ? classify(errno) : answered;
    }
    if (!wait_for(fd.get(), POLLOUT, timeout)) return timed_out;
    int error = 0;
    socklen_t error_length = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &error_length);
    return error == 0 ? answered : classify(error);
}

Outcome run_as_user(const UserIdentity& user, const Probe& probe, const sockaddr_storage& address,
                    socklen_t length, const std::string& device, int timeout = timeout_ms) {
    pid_t child = ::fork();
    if (child < 0) throw_system_error("cannot fork a probe", errno);
    if (child == 0) {
        int outcome = other_error;
        try {
            drop_privileges(user);
            outcome = probe_once(probe, address, length, device, timeout);
        } catch (const std::exception&) {
            outcome = other_error;  // a probe that could not run proves nothing
        }
        ::_exit(outcome);
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    // Only the outcomes a probe reports count; anything else (a crash, an exit of its own) is no pass.
    if (!WIFEXITED(status) || WEXITSTATUS(status) < answered || WEXITSTATUS(status) > other_error) return other_error;
    return static_cast<Outcome>(WEXITSTATUS(status));
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

// Counts the probe user's packets that got past the kill switch: a chain on the postrouting
// hook, after every filter, in a table of its own that lives only while verify runs. A packet
// counted there was on its way out; none may be.
class EscapeCounter {
public:
    // Loopback (the kill switch's own resets come back that way) and the TUN are not "out".
    EscapeCounter(uid_t probe_uid, const std::string& tun_name) {
        nft_.run(std::string(delete_script) + "table inet psiphon_verify {\n chain postrouting {\n"
                 "  type filter hook postrouting priority 1000; policy accept;\n  meta skuid " +
                 std::to_string(probe_uid) + " oifname != \"lo\" oifname != \"" + tun_name +
                 "\" counter comment \"escaped\"\n }\n}\n");
    }
    ~EscapeCounter() {
        try {
            nft_.run(delete_script);
        } catch (const Error& error) {
            log::warning(std::string("cannot remove the leak probe's counting table: ") + error.what());
        }
    }
    EscapeCounter(const EscapeCounter&) = delete;
    EscapeCounter& operator=(const EscapeCounter&) = delete;

    std::uint64_t packets() {
        const auto listing = nft_.list_table_json("inet", "psiphon_verify");
        if (!listing) throw Error("the verify counter table disappeared");
        const ListedTable table = parse_listing(*listing);
        const ListedChain* chain = table.find_chain("postrouting");
        std::uint64_t total = 0;
        if (chain)
            for (const ListedRule& rule : chain->rules) total += rule.packets;
        return total;
    }

private:
    static constexpr const char* delete_script = "table inet psiphon_verify {}\ndelete table inet psiphon_verify\n";
    NftContext nft_;
};

// A packet counted outside loopback and the TUN fails a probe whatever it saw. An answer with
// nothing counted came through the tunnel: that is the tunnel working, unless the probe was
// bound to an uplink, where no answer may come at all.
ProbeResult judge(const Probe& probe, const std::string& device, Outcome outcome, bool has_escaped) {
    ProbeResult result{probe.name, device, false, ""};
    if (outcome == other_error) {
        result.verdict = "the probe could not run";
    } else if (has_escaped || (outcome == answered && !device.empty())) {
        result.verdict = outcome == answered ? "answered: traffic leaves outside the tunnel"
                                             : "a packet got past the kill switch";
    } else {
        result.passed = true;
        result.verdict = outcome == answered  ? "answered through the tunnel"
                         : outcome == no_route ? "no route: nothing can leave"
                                               : "rejected by the kill switch";
    }
    return result;
}

UserIdentity probe_user(const ProbeTargets& targets) {
    const UserIdentity user = lookup_user(targets.probe_user);
    if (user.uid == 0) throw Error("--probe-user: the probes must run as a user other than root", exit_status::usage);
    return user;
}

}  // namespace

std::vector<ProbeResult> run_leak_probes(const ProbeTargets& targets, const std::string& tun_name) {
    const UserIdentity user = probe_user(targets);
    socklen_t unused = 0;
    make_address(AF_INET, targets.ipv4, 0, unused);
    make_address(AF_INET6, targets.ipv6, 0, unused);
    std::vector<std::string> devices{""};
    for (const std::string& name : uplinks(tun_name)) devices.push_back(name);

    std::vector<ProbeResult> results;
    EscapeCounter escaped(user.uid, tun_name);
    for (const std::string& device : devices) {
        for (const Probe& probe : probes) {
            socklen_t length = 0;
            const std::string& target = probe.family == AF_INET ? targets.ipv4 : targets.ipv6;
            sockaddr_storage address =
                make_address(probe.family, target, probe.kind == Kind::dns ? 53 : targets.tcp_port, length);
            const std::uint64_t before = escaped.packets();
            const Outcome outcome = run_as_user(user, probe, address, length, device);
            results.push_back(judge(probe, device, outcome, escaped.packets() > before));
        }
    }
    return results;
}

ProbeResult run_tunnel_probe(const ProbeTargets& targets, const std::string& dns_address) {
    const UserIdentity user = probe_user(targets);
    const bool is_v4 = dns_address.find(':') == std::string::npos;
    const Probe probe{is_v4 ? "tunnel-dns-ipv4" : "tunnel-dns-ipv6", is_v4 ? AF_INET : AF_INET6, Kind::dns};
    socklen_t length = 0;
    const sockaddr_storage address = make_address(probe.family, dns_address, 53, length);
    const Outcome outcome = run_as_user(user, probe, address, length, "", tunnel_timeout_ms);
    ProbeResult result{probe.name, "", outcome == answered, ""};
    switch (outcome) {
        case answered: result.verdict = "answered through the tunnel"; break;
        case timed_out: result.verdict = "no answer: the tunnel does not carry traffic"; break;
        case other_error: result.verdict = "the probe could not run"; break;
        default: result.verdict = "refused: nothing carries the TUN's traffic";
    }
    return result;
}

}  // namespace psi::fw
