#include "tun/address_plan.hpp"

#include <gtest/gtest.h>

#include <string>

#include "core/error.hpp"

namespace psi::tun {
namespace {

// "address/prefix: address, prefix, network, NAT source, resolver" in one line, to compare.
std::string described(const TunAddresses& addresses) {
    return addresses.interface_address + ": " + addresses.address + " /" + std::to_string(addresses.prefix_length) +
           " in " + addresses.network + ", NAT source " + addresses.nat_source + ", DNS " + addresses.dns;
}

TEST(AddressPlan, TheDefaultPlan) {
    const AddressPlan plan = address_plan(Config{});
    EXPECT_EQ(described(plan.ipv4), "10.200.3.1/24: 10.200.3.1 /24 in 10.200.3.0/24, NAT source 10.200.3.3, DNS 10.200.3.2");
    EXPECT_EQ(described(plan.ipv6),
              "fd42:42:42::1/64: fd42:42:42::1 /64 in fd42:42:42::/64, NAT source fd42:42:42::3, DNS fd42:42:42::2");
}

TEST(AddressPlan, FollowsTheConfiguredNetworksAndResolvers) {
    Config config;
    config.tun_address_ipv4 = "192.168.77.10/29";
    config.tun_address_ipv6 = "fd00:1:2:3::9/112";
    config.tun_dns_ipv4 = "192.168.77.9";
    config.tun_dns_ipv6 = "fd00:1:2:3::8";
    const AddressPlan plan = address_plan(config);
    EXPECT_EQ(described(plan.ipv4),
              "192.168.77.10/29: 192.168.77.10 /29 in 192.168.77.8/29, NAT source 192.168.77.11, DNS 192.168.77.9");
    EXPECT_EQ(described(plan.ipv6),
              "fd00:1:2:3::9/112: fd00:1:2:3::9 /112 in fd00:1:2:3::/112, NAT source fd00:1:2:3::3, DNS fd00:1:2:3::8");
}

TEST(AddressPlan, RefusesATunAddressWithoutAPrefix) {
    Config config;
    config.tun_address_ipv4 = "10.200.3.1";
    EXPECT_THROW(address_plan(config), Error);
}

TEST(AddressPlan, AddressesInsideTheNetwork) {
    EXPECT_EQ(address_in_network("10.200.3.1/24", 3), "10.200.3.3");
    EXPECT_EQ(address_in_network("fd42:42:42::1/64", 3), "fd42:42:42::3");
    EXPECT_EQ(address_in_network("10.0.0.255/16", 258), "10.0.1.2");
}

TEST(AddressPlan, NetworkOfMasksHostBits) {
    EXPECT_EQ(network_of("10.200.3.1/24"), "10.200.3.0/24");
    EXPECT_EQ(network_of("fd42:42:42::1/64"), "fd42:42:42::/64");
    EXPECT_EQ(network_of("192.168.77.10/30"), "192.168.77.8/30");
    EXPECT_THROW(network_of("10.200.3.1"), Error);
    EXPECT_THROW(network_of("10.200.3.1/33"), Error);
}

}  // namespace
}  // namespace psi::tun
