#include "packet/ip_address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>

#include "core/error.hpp"

namespace psi::packet {

IpAddress parse_ip_address(const std::string& text, const std::string& what) {
    IpAddress address;
    if (inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) {
        address.version = IpVersion::v4;
    } else if (inet_pton(AF_INET6, text.c_str(), address.bytes.data()) == 1) {
        address.version = IpVersion::v6;
    } else {
        throw Error(what + " '" + text + "' is not an IPv4 or IPv6 address", exit_status::usage);
    }
    return address;
}

bool is_in_network(const IpAddress& address, const IpAddress& network, int prefix_length) {
    if (address.version != network.version) return false;
    for (int bit = 0; bit < prefix_length; bit += 8) {
        const int bits = std::min(8, prefix_length - bit);
        const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
        const std::size_t index = static_cast<std::size_t>(bit / 8);
        if ((address.bytes[index] & mask) != (network.bytes[index] & mask)) return false;
    }
    return true;
}

bool is_forwardable(const IpAddress& address) {
    const auto& b = address.bytes;
    if (address.version == IpVersion::v4)
        return b[0] != 0 && b[0] != 127 && b[0] < 224 && !(b[0] == 169 && b[1] == 254);  // link-local
    if (b[0] == 0xff) return false;                           // multicast
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;  // link-local
    // ::, ::1, and IPv4-mapped or -compatible addresses (::ffff:127.0.0.1 is loopback too).
    bool is_zero_prefix = true;
    for (std::size_t i = 0; i < 10; ++i) is_zero_prefix = is_zero_prefix && b[i] == 0;
    return !is_zero_prefix;
}

}  // namespace psi::packet
