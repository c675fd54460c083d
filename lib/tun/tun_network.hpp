// psi-tun up and down: the TUN device, its addresses, the routing table that sends everyone
// but the tunnel user into it, rp_filter, arp_ignore, and DNS. Every change is recorded in
// RunDirectory/tun.json as it is made, so that down undoes exactly what up did, also after a
// crash half way; both are idempotent.
#pragma once

#include <string>
#include <vector>

#include "core/config.hpp"

namespace psi::tun {

inline constexpr int route_table = 20563;      // "PS"
inline constexpr int rule_priority = 20563;    // everyone but the tunnel user: into the table
inline constexpr int lan_rule_priority = 20562;  // AllowLan: LAN routes of main first, never DNS
inline constexpr int mtu = 1500;
inline constexpr int tx_queue_length = 5000;   // docs/packet-engine.md §3.10: 500 drops when the reader lags

struct UpReport {
    bool created_device = false;
    bool has_ipv6 = true;  // false: IPv6 is disabled, and the TUN carries IPv4 alone
    std::string dns_method;
};

UpReport bring_up(const Config& config);

// False when there was no record of an up (then only psi's own rules and table are cleared).
bool bring_down(const Config& config);

std::string state_path(const Config& config);

// Whether the kernel has IPv6 (not with ipv6.disable=1), and whether `tun` may carry it (not
// with net.ipv6.conf.*.disable_ipv6, a common leak fix, when the TUN was made): without it the
// TUN carries IPv4 alone, and IPv6 meets the unreachable route and the kill switch.
bool has_ipv6_stack();
bool has_ipv6(const std::string& tun);

// The uplink's resolvers that psi-tun up recorded before it pointed the system's resolver into
// the TUN (resolver.hpp's uplink_resolvers); none when psi-tun is not up or recorded none.
std::vector<std::string> recorded_uplink_resolvers(const Config& config);

}  // namespace psi::tun
