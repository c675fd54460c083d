// Active proof for `psi-fw verify`: as a user that is not the tunnel user, try a TCP
// connection, a UDP datagram and a DNS query, unbound and bound to each uplink. Each must fail, and none of
// the probe user's packets may reach the postrouting hook (counted in a table that exists
// only while verify runs): a packet there got past the kill switch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace psi::fw {

struct ProbeTargets {
    std::string ipv4 = "192.0.2.1";    // TEST-NET-1: harmless should a probe ever leave
    std::string ipv6 = "2001:db8::1";  // documentation prefix
    std::uint16_t tcp_port = 443;  // and of the UDP probes (QUIC's)
    std::string probe_user = "nobody";
};

struct ProbeResult {
    std::string name;    // "tcp-ipv4", "dns-ipv6", ...
    std::string device;  // "" when unbound
    bool passed = false;
    std::string verdict;
};

std::vector<ProbeResult> run_leak_probes(const ProbeTargets& targets, const std::string& tun_name);

// The other half of the proof: as the probe user, a DNS query to the in-tunnel resolver's
// address, through the TUN, is answered. That takes the whole path (TUN, engine, proxy,
// server), so it passes only while a tunnel carries traffic.
ProbeResult run_tunnel_probe(const ProbeTargets& targets, const std::string& dns_address);

}  // namespace psi::fw
