#include "core/global_address.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstdint>

namespace psi {
namespace {

struct Prefix {
    std::array<std::uint8_t, 16> bytes;
    int length;
};

bool is_inside(const std::uint8_t* address, const Prefix& prefix) {
    for (int bit = 0; bit < prefix.length; ++bit) {
        const auto index = static_cast<std::size_t>(bit / 8);
        const unsigned mask = 0x80u >> (bit % 8);
        if ((address[index] & mask) != (prefix.bytes[index] & mask)) return false;
    }
    return true;
}

// IPv4 special-purpose blocks that are not globally reachable, multicast and the reserved
// 240/4 (which holds 255.255.255.255). 192.0.0.0/24 is refused whole: its two global anycast
// addresses (PCP, TURN) are no Psiphon server.
const std::array<Prefix, 15> non_global_ipv4 = {{
    {{0, 0, 0, 0}, 8},        // "this network"
    {{10, 0, 0, 0}, 8},       // private
    {{100, 64, 0, 0}, 10},    // shared address space (carrier-grade NAT)
    {{127, 0, 0, 0}, 8},      // loopback
    {{169, 254, 0, 0}, 16},   // link-local, cloud metadata services
    {{172, 16, 0, 0}, 12},    // private
    {{192, 0, 0, 0}, 24},     // IETF protocol assignments
    {{192, 0, 2, 0}, 24},     // documentation (TEST-NET-1)
    {{192, 168, 0, 0}, 16},   // private
    {{198, 18, 0, 0}, 15},    // benchmarking
    {{198, 51, 100, 0}, 24},  // documentation (TEST-NET-2)
    {{203, 0, 113, 0}, 24},   // documentation (TEST-NET-3)
    {{224, 0, 0, 0}, 4},      // multicast
    {{240, 0, 0, 0}, 4},      // reserved, limited broadcast
    {{255, 255, 255, 255}, 32},
}};

// Of IPv6, only 2000::/3 is global unicast space; within it, these are not globally reachable.
// 2001::/23 is refused whole: its few global entries are anycast services, no Psiphon server.
const Prefix global_ipv6 = {{0x20}, 3};
const std::array<Prefix, 3> non_global_ipv6 = {{
    {{0x20, 0x01, 0x00, 0x00}, 23},  // IETF protocol assignments (Teredo, benchmarking, ORCHID)
    {{0x20, 0x01, 0x0d, 0xb8}, 32},  // documentation
    {{0x3f, 0xff}, 20},              // documentation
}};

// IPv6 addresses that stand for an IPv4 one in their last 32 bits.
const std::array<Prefix, 2> ipv4_in_ipv6 = {{
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96},    // IPv4-mapped
    {{0x00, 0x64, 0xff, 0x9b}, 96},                       // NAT64 well-known prefix (RFC 6052)
}};

bool is_global_ipv4(const std::uint8_t* address) {
    for (const Prefix& prefix : non_global_ipv4)
        if (is_inside(address, prefix)) return false;
    return true;
}

bool is_global_ipv6(const std::uint8_t* address) {
    for (const Prefix& prefix : ipv4_in_ipv6)
        if (is_inside(address, prefix)) return is_global_ipv4(address + 12);
    if (!is_inside(address, global_ipv6)) return false;
    for (const Prefix& prefix : non_global_ipv6)
        if (is_inside(address, prefix)) return false;
    return true;
}

}  // namespace

bool is_global_unicast(const std::string& address) {
    std::array<std::uint8_t, 16> bytes{};
    if (address.find('\0') != std::string::npos) return false;  // inet_pton would stop there
    if (inet_pton(AF_INET, address.c_str(), bytes.data()) == 1) return is_global_ipv4(bytes.data());
    if (inet_pton(AF_INET6, address.c_str(), bytes.data()) == 1) return is_global_ipv6(bytes.data());
    return false;
}

}  // namespace psi
