#include "core/global_address.hpp"

#include <gtest/gtest.h>

namespace psi {
namespace {

TEST(GlobalAddress, ServersOnTheInternetAreGlobal) {
    for (const char* address : {"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.1", "100.63.255.255", "100.128.0.0",
                                "126.255.255.255", "128.0.0.1", "169.253.255.255", "172.15.255.255", "172.32.0.0",
                                "192.0.1.255", "192.0.3.0", "192.167.255.255", "192.169.0.0", "192.175.48.7",
                                "198.17.255.255", "198.20.0.0", "198.51.99.255", "203.0.112.255", "223.255.255.255",
                                "2a00:1450:4001::1", "2001:200::1", "2606:4700::1111", "3ffe::1", "::ffff:8.8.8.8",
                                "64:ff9b::808:808"})
        EXPECT_TRUE(is_global_unicast(address)) << address;
}

TEST(GlobalAddress, SpecialPurposeIpv4BlocksAreNot) {
    for (const char* address : {"0.0.0.0", "0.1.2.3", "10.0.0.1", "10.255.255.255", "100.64.0.1", "100.127.255.255",
                                "127.0.0.1", "127.255.255.254", "169.254.169.254", "169.254.0.1", "172.16.0.1",
                                "172.31.255.255", "192.0.0.9", "192.0.2.7", "192.168.77.1", "192.168.0.0",
                                "198.18.0.1", "198.19.255.255", "198.51.100.10", "203.0.113.5", "224.0.0.1",
                                "239.255.255.250", "240.0.0.1", "255.255.255.254", "255.255.255.255"})
        EXPECT_FALSE(is_global_unicast(address)) << address;
}

TEST(GlobalAddress, SpecialPurposeIpv6BlocksAndTheReservedSpaceAreNot) {
    for (const char* address : {"::", "::1", "::192.168.77.1", "100::1", "100:0:0:1::1", "64:ff9b:1::1",
                                "2001::1", "2001:2::1", "2001:1ff:ffff::1", "2001:db8::7", "2001:db8:100::10",
                                "3fff::1", "3fff:fff::1", "5f00::1", "fc00::1", "fd77::10", "fe80::1", "fec0::1",
                                "ff02::1", "4000::1", "1fff:ffff::1"})
        EXPECT_FALSE(is_global_unicast(address)) << address;
}

TEST(GlobalAddress, AnIpv6AddressThatStandsForAnIpv4OneIsWhatThatIs) {
    for (const char* address : {"::ffff:127.0.0.1", "::FFFF:7F00:1", "0:0:0:0:0:ffff:c0a8:4d01",
                                "::ffff:169.254.169.254", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::c0a8:4d01"})
        EXPECT_FALSE(is_global_unicast(address)) << address;
}

TEST(GlobalAddress, TextThatIsNoAddressIsNot) {
    for (const std::string& address : {std::string(""), std::string("localhost"), std::string("8.8.8"),
                                      std::string("fe80::1%eth0"), std::string("8.8.8.8\0.1", 10),
                                      std::string(" 8.8.8.8")})
        EXPECT_FALSE(is_global_unicast(address)) << address;
}

}  // namespace
}  // namespace psi
