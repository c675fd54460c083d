// The TUN's address plan (docs/packet-engine.md §3.1), from TunAddressIPv4/IPv6 and TunDnsIPv4/IPv6: the TUN's
// own address (the engine's listener), its network, the source of the engine's NAT legs (the
// network's third address) and the in-tunnel resolver address applications send DNS to.
// psi-tun up, the engine and the packet tunnel, psi-fw's rules and psi-diagnose all read it here.
#pragma once

#include <string>

#include "core/config.hpp"

namespace psi::tun {

inline constexpr unsigned nat_source_offset = 3;  // the NAT source: the network's address + 3

// One IP family's part of the plan, as text.
struct TunAddresses {
    std::string interface_address;  // "10.200.3.1/24": what psi-tun up gives the TUN, as configured
    std::string address;            // "10.200.3.1": the TUN's own, where the engine listens
    int prefix_length = 0;          // 24
    std::string network;            // "10.200.3.0/24"
    std::string nat_source;         // "10.200.3.3"
    std::string dns;                // "10.200.3.2": answered inside the tunnel
};

struct AddressPlan {
    TunAddresses ipv4, ipv6;
};

// Throws psi::Error on a TUN address that is not an address with a prefix.
AddressPlan address_plan(const Config& config);

// "10.200.3.1/24" -> "10.200.3.0/24"; throws psi::Error on a malformed prefix.
std::string network_of(const std::string& address_with_prefix);

// "10.200.3.1/24" -> "10.200.3.1".
std::string address_of(const std::string& address_with_prefix);

// The address `offset` after the network's first: ("10.200.3.1/24", 3) -> "10.200.3.3".
std::string address_in_network(const std::string& address_with_prefix, unsigned offset);

}  // namespace psi::tun
