#include "core/config.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace psi {
namespace {

std::string error_of(const std::string& text) {
    try {
        parse_config(text, "psi.conf");
    } catch (const Error& error) {
        EXPECT_EQ(error.exit_code(), exit_status::usage);
        return error.what();
    }
    return "";
}

TEST(Config, DefaultsMatchTheDesign) {
    Config config = parse_config("{}", "psi.conf");
    EXPECT_EQ(config.tun_name, "PsiphonTUN");
    EXPECT_EQ(config.tun_address_ipv4, "10.200.3.1/24");
    EXPECT_EQ(config.tun_address_ipv6, "fd42:42:42::1/64");
    EXPECT_EQ(config.tun_dns_ipv4, "10.200.3.2");
    EXPECT_EQ(config.tun_dns_ipv6, "fd42:42:42::2");
    EXPECT_EQ(config.tunnel_user, "psiphon-user");
    EXPECT_FALSE(config.allow_lan);
    EXPECT_TRUE(config.warnings.empty());
}

TEST(Config, ReadsPsiKeysAndPsiphonKeys) {
    Config config = parse_config(R"({"SponsorId": "FFFF", "TunName": "tun7", "AllowLan": true,
        "TunAddressIPv4": "10.9.0.1/24", "TunDnsIPv4": "10.9.0.2", "LocalSocksProxyPort": 1081,
        "BootstrapDNSServers": ["192.0.2.53", "2001:db8::53"]})", "psi.conf");
    EXPECT_EQ(config.tun_name, "tun7");
    EXPECT_TRUE(config.allow_lan);
    EXPECT_EQ(config.tun_dns_ipv4, "10.9.0.2");
    EXPECT_EQ(config.psiphon.sponsor_id, "FFFF");
    EXPECT_EQ(config.psiphon.local_socks_port, 1081);
    EXPECT_EQ(local_socks_port(config), 1081);
    EXPECT_EQ(local_http_port(config), default_http_port);
    EXPECT_TRUE(config.warnings.empty());
}

TEST(Config, UnknownKeysWarnWithTheirLine) {
    Config config = parse_config("{\n \"SponsorId\": \"x\",\n \"AllowLAN\": true\n}", "psi.conf");
    ASSERT_EQ(config.warnings.size(), 1u);
    EXPECT_EQ(config.warnings[0], "psi.conf line 3: unknown key AllowLAN (ignored)");
    EXPECT_FALSE(config.allow_lan);
}

TEST(Config, BadValuesNameTheKeyAndLine) {
    EXPECT_EQ(error_of("{\n\"AllowLan\": \"yes\"}"), "psi.conf line 2: AllowLan must be true or false");
    EXPECT_EQ(error_of("{\"TunDnsIPv4\": \"10.200.3\"}"), "psi.conf line 1: TunDnsIPv4 must be an IPv4 address");
    EXPECT_EQ(error_of("{\"TunDnsIPv6\": \"10.0.0.1\"}"), "psi.conf line 1: TunDnsIPv6 must be an IPv6 address");
    EXPECT_NE(error_of("{\"TunAddressIPv4\": \"10.200.3.1\"}").find("TunAddressIPv4 must be an IPv4 address with a prefix"), std::string::npos);
    EXPECT_NE(error_of("{\"TunAddressIPv6\": \"fd42::1/129\"}").find("TunAddressIPv6"), std::string::npos);
    EXPECT_NE(error_of("{\"TunName\": \"a-very-long-interface\"}").find("TunName must be an interface name"), std::string::npos);
    EXPECT_EQ(error_of("{\"TunName\": 5}"), "psi.conf line 1: TunName must be a string");
    EXPECT_EQ(error_of("{\"RunDirectory\": \"run\"}"), "psi.conf line 1: RunDirectory must be an absolute path");
    EXPECT_EQ(error_of("{\"EmbeddedServerList\": \"server_list\"}"),
              "psi.conf line 1: EmbeddedServerList must be an absolute path");
    EXPECT_NE(error_of("{\"TunAddressIPv4\": \"0.0.0.0/0\"}").find("prefix length from 8 to 30"), std::string::npos);
    EXPECT_EQ(error_of("{\"TunName\": \"eth*\"}").find("psi.conf line 1: TunName must be an interface name"), 0u);
    EXPECT_EQ(error_of("{\"TunDnsIPv4\": \"10.9.0.2\"}"), "psi.conf line 1: TunDnsIPv4 must lie inside TunAddressIPv4");
    EXPECT_EQ(error_of("{\n\"TunAddressIPv6\": \"fd00:1::1/64\"}"), "psi.conf line 2: TunDnsIPv6 must lie inside TunAddressIPv6");
    EXPECT_EQ(error_of("{\"LocalSocksProxyPort\": \"abc\"}"), "psi.conf line 1: LocalSocksProxyPort must be a port number from 0 to 65535");
    EXPECT_EQ(error_of("{\"LocalSocksProxyPort\": 1e400}"), "psi.conf line 1: LocalSocksProxyPort must be a port number from 0 to 65535");
    EXPECT_EQ(error_of("{\"LocalSocksProxyPort\": 80.5}"), "psi.conf line 1: LocalSocksProxyPort must be a port number from 0 to 65535");
    EXPECT_EQ(error_of("{\"LocalHttpProxyPort\": 70000}"), "psi.conf line 1: LocalHttpProxyPort must be a port number from 0 to 65535");
    EXPECT_EQ(error_of("{\"LimitTunnelProtocols\": [\"OSSH\", 1]}"), "psi.conf line 1: LimitTunnelProtocols must be a list of strings");
    EXPECT_EQ(error_of("{\"BootstrapDNSServers\": [\"resolver\"]}"), "psi.conf line 1: BootstrapDNSServers must list IP addresses");
    EXPECT_EQ(error_of("{\"SponsorId\": 7}"), "psi.conf line 1: SponsorId must be a string");
    EXPECT_EQ(error_of("[1]"), "psi.conf: the config must be a JSON object");
    EXPECT_EQ(error_of("{\"a\": }"), "psi.conf line 1: unexpected character '}'");
}

TEST(Config, MissingDefaultFileGivesDefaultsButAnExplicitOneIsAnError) {
    EXPECT_THROW(load_config("/nonexistent/psi.conf"), Error);
}

}  // namespace
}  // namespace psi
