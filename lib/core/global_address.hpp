// Whether an IP address is one a server on the Internet can have. The guide is IANA's IPv4 and
// IPv6 Special-Purpose Address Registries (RFC 6890): what they mark "globally reachable: false"
// (loopback, private, shared, link-local, documentation, benchmarking, ...), multicast, and the
// reserved space, is not; an IPv4-mapped or well-known-prefix NAT64 address is what its IPv4
// address is.
#pragma once

#include <string>

namespace psi {

// false for text that inet_pton does not read as an address.
bool is_global_unicast(const std::string& address);

}  // namespace psi
