// What the kill switch allows, derived from the config: the input of the rule builder.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "core/config.hpp"

namespace psi::fw {

inline constexpr const char* table_family = "inet";
inline constexpr const char* table_name = "psiphon_filter";
// Conntrack mark of connections opened by the tunnel user outside the TUN ("PSI" 01).
inline constexpr std::uint32_t tunnel_conntrack_mark = 0x50534901;

enum class Mode {
    tunnel,   // `up`: the tunnel user and the TUN may pass
    blocked,  // `boot`: nothing but loopback, DHCP and NDP (and the LAN if allowed)
};

const char* mode_name(Mode mode);

struct Policy {
    Mode mode = Mode::tunnel;
    uid_t tunnel_uid = 0;
    std::string tun_name;
    std::string tun_address_ipv4;  // "10.200.3.1": the engine's listener
    std::string tun_address_ipv6;
    std::string nat_source_ipv4;   // "10.200.3.3": the engine's NAT source (docs/architecture.md §4)
    std::string nat_source_ipv6;
    std::string tun_network_ipv4;  // "10.200.3.0/24"
    std::string tun_network_ipv6;  // "fd42:42:42::/64"
    std::string dns_ipv4;
    std::string dns_ipv6;
    bool allow_lan = false;
};

// Throws psi::Error when the tunnel user does not exist (tunnel mode only: the blocked
// policy names no user, so it loads at early boot whatever the state of the system).
Policy make_policy(const Config& config, Mode mode);

}  // namespace psi::fw
