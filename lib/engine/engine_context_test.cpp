#include "engine/engine_context.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "packet/ip_address.hpp"

namespace psi::engine {

using packet::Endpoint;
using packet::parse_ip_address;

namespace {

Endpoint endpoint(const std::string& address, std::uint16_t port) { return {parse_ip_address(address, "test"), port}; }

EngineSettings lab_settings() {
    EngineSettings settings;
    settings.tun_address_ipv4 = parse_ip_address("10.200.3.1", "test");
    settings.tun_address_ipv6 = parse_ip_address("fd42:42:42::1", "test");
    settings.dns_ipv4 = parse_ip_address("10.200.3.2", "test");
    settings.dns_ipv6 = parse_ip_address("fd42:42:42::2", "test");
    settings.dns_resolver = parse_ip_address("198.51.100.53", "test");
    return settings;
}

TEST(ProxyDestination, DnsToTheInTunnelAddressesGoesToTheResolver) {
    const EngineSettings settings = lab_settings();
    EXPECT_EQ(proxy_destination(settings, endpoint("10.200.3.2", 53)), endpoint("198.51.100.53", 53));
    EXPECT_EQ(proxy_destination(settings, endpoint("fd42:42:42::2", 53)), endpoint("198.51.100.53", 53));
    EXPECT_EQ(proxy_destination(settings, endpoint("10.200.3.2", 80)), std::nullopt);
}

TEST(ProxyDestination, OrdinaryDestinationsGoThereAsTheyAre) {
    const EngineSettings settings = lab_settings();
    EXPECT_EQ(proxy_destination(settings, endpoint("198.51.100.10", 443)), endpoint("198.51.100.10", 443));
    EXPECT_EQ(proxy_destination(settings, endpoint("2001:db8:100::10", 80)), endpoint("2001:db8:100::10", 80));
    EXPECT_EQ(proxy_destination(settings, endpoint("10.200.4.1", 80)), endpoint("10.200.4.1", 80));  // next /24
}

TEST(ProxyDestination, NeverTheTunsNetworksLoopbackLinkLocalMulticastOrPortZero) {
    const EngineSettings settings = lab_settings();
    for (const auto& [address, port] : std::vector<std::pair<std::string, std::uint16_t>>{
             {"10.200.3.1", 80}, {"10.200.3.3", 80}, {"10.200.3.255", 80}, {"fd42:42:42::1", 80}, {"fd42:42:42::99", 80},
             {"127.0.0.1", 80}, {"0.0.0.0", 80}, {"224.0.0.251", 5353}, {"255.255.255.255", 67}, {"::1", 80},
             {"::", 80}, {"fe80::1", 80}, {"ff02::fb", 5353}, {"198.51.100.10", 0}, {"169.254.169.254", 80},
             {"::ffff:127.0.0.1", 80}, {"::ffff:198.51.100.10", 80}, {"::127.0.0.1", 80}}) {
        EXPECT_EQ(proxy_destination(settings, endpoint(address, port)), std::nullopt) << address << " port " << port;
    }
}

TEST(ProxyDestination, APrefixOfItsOwnDecidesWhatIsInsideTheTun) {
    EngineSettings settings = lab_settings();
    settings.tun_prefix_ipv4 = 16;
    EXPECT_EQ(proxy_destination(settings, endpoint("10.200.4.1", 80)), std::nullopt);
    EXPECT_EQ(proxy_destination(settings, endpoint("10.201.0.1", 80)), endpoint("10.201.0.1", 80));
}

TEST(EngineAddresses, ParseAndConvertToSocksAddresses) {
    EXPECT_THROW(parse_ip_address("10.200.3", "TunDnsResolver"), Error);
    EXPECT_THROW(parse_ip_address("example.test", "TunDnsResolver"), Error);
    const proxy::SocksAddress v6 = socks_address_of(endpoint("2001:db8::7", 8443));
    EXPECT_EQ(v6.type, proxy::AddressType::ipv6);
    EXPECT_EQ(v6.host, "2001:db8::7");
    EXPECT_EQ(endpoint_of(v6), endpoint("2001:db8::7", 8443));
    EXPECT_EQ(endpoint_of(proxy::SocksAddress{proxy::AddressType::domain, "example.test", 80}), std::nullopt);
}

}  // namespace
}  // namespace psi::engine
