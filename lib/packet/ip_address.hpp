// IP addresses as the packet codec's IpAddress holds them: parsed from text, and the
// properties the engine and the packet tunnel decide on.
#pragma once

#include <string>

#include "packet/packet.hpp"

namespace psi::packet {

// Throws psi::Error naming `what` when `text` is not an IPv4 or IPv6 address.
IpAddress parse_ip_address(const std::string& text, const std::string& what);
bool is_in_network(const IpAddress& address, const IpAddress& network, int prefix_length);
// Unicast and not loopback, link-local or unspecified: what may be passed on to the proxy.
bool is_forwardable(const IpAddress& address);

}  // namespace psi::packet
