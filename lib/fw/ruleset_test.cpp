#include "fw/ruleset.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.hpp"

namespace psi::fw {
namespace {

Policy test_policy(Mode mode, bool allow_lan = false) {
    Policy policy;
    policy.mode = mode;
    policy.tunnel_uid = 1500;
    policy.tun_name = "PsiphonTUN";
    policy.tun_address_ipv4 = "10.200.3.1";
    policy.tun_address_ipv6 = "fd42:42:42::1";
    policy.nat_source_ipv4 = "10.200.3.3";
    policy.nat_source_ipv6 = "fd42:42:42::3";
    policy.tun_network_ipv4 = "10.200.3.0/24";
    policy.tun_network_ipv6 = "fd42:42:42::/64";
    policy.dns_ipv4 = "10.200.3.2";
    policy.dns_ipv6 = "fd42:42:42::2";
    policy.allow_lan = allow_lan;
    return policy;
}

std::vector<std::string> names(const Chain& chain) {
    std::vector<std::string> result;
    for (const Rule& rule : chain.rules) result.push_back(rule.name);
    return result;
}

std::ptrdiff_t position(const Chain& chain, const std::string& name) {
    auto list = names(chain);
    auto it = std::find(list.begin(), list.end(), name);
    EXPECT_NE(it, list.end()) << name;
    return it - list.begin();
}

Chain chain(const Table& table, const std::string& name) {
    const Chain* found = table.find_chain(name);
    if (!found) throw Error("no chain " + name);
    return *found;
}

TEST(Ruleset, EveryFilterChainDropsByDefault) {
    for (Mode mode : {Mode::tunnel, Mode::blocked}) {
        Table table = build_table(test_policy(mode));
        EXPECT_EQ(chain(table, "output").policy, "drop");
        EXPECT_EQ(chain(table, "input").policy, "drop");
        EXPECT_EQ(chain(table, "forward").policy, "drop");
    }
}

TEST(Ruleset, OutputHasNoBlanketEstablishedRule) {
    for (const Rule& rule : chain(build_table(test_policy(Mode::tunnel)), "output").rules)
        EXPECT_EQ(rule.statement.find("established"), std::string::npos) << rule.name;
}

TEST(Ruleset, TunnelUserConnectionsAreMarkedAndOnlyMarkedOnesPass) {
    const Chain output = chain(build_table(test_policy(Mode::tunnel)), "output");
    const Rule& marked = output.rules[static_cast<std::size_t>(position(output, "tunnel-user-connections"))];
    const Rule& fresh = output.rules[static_cast<std::size_t>(position(output, "tunnel-user-new"))];
    EXPECT_EQ(marked.statement, "ct mark 0x50534901 accept");
    EXPECT_EQ(fresh.statement,
              "meta skuid 1500 oifname != \"PsiphonTUN\" ct state new ct mark set 0x50534901 accept");
}

TEST(Ruleset, DnsIsRejectedBeforeTheTunAndTheLanButAfterTheInTunnelResolver) {
    const Chain output = chain(build_table(test_policy(Mode::tunnel, true)), "output");
    EXPECT_LT(position(output, "dns-in-tunnel-ipv4"), position(output, "dns-elsewhere-udp"));
    EXPECT_LT(position(output, "dns-in-tunnel-ipv6"), position(output, "dns-elsewhere-tcp"));
    EXPECT_LT(position(output, "dns-elsewhere-udp"), position(output, "tun"));
    EXPECT_LT(position(output, "dns-elsewhere-tcp"), position(output, "lan-ipv4"));
    EXPECT_LT(position(output, "lan-not-tun-network-ipv4"), position(output, "lan-ipv4"));
    EXPECT_NE(output.rules[static_cast<std::size_t>(position(output, "dns-elsewhere-udp"))].statement.find(
                  "{ 53, 137, 853, 5353, 5355 }"),
              std::string::npos);
}

TEST(Ruleset, OutputEndsInRejectSoApplicationsFailAtOnce) {
    const Chain output = chain(build_table(test_policy(Mode::tunnel)), "output");
    ASSERT_GE(output.rules.size(), 2u);
    EXPECT_EQ(output.rules[output.rules.size() - 2].name, "reject-tcp");
    EXPECT_EQ(output.rules.back().statement, "counter reject with icmpx admin-prohibited");
}

TEST(Ruleset, OnlyTheEnginesNatLegsMayComeInNewFromTheTun) {
    const Chain input = chain(build_table(test_policy(Mode::tunnel)), "input");
    for (const Rule& rule : input.rules) {
        if (rule.statement.find("iifname \"PsiphonTUN\"") == std::string::npos) continue;
        const bool is_engine = rule.name.rfind("tun-engine-", 0) == 0;
        const bool is_established = rule.statement.find("ct state established,related") != std::string::npos;
        EXPECT_TRUE(is_engine || is_established) << rule.name;
    }
    EXPECT_EQ(input.rules[static_cast<std::size_t>(position(input, "tun-engine-ipv4"))].statement,
              "iifname \"PsiphonTUN\" ip saddr 10.200.3.3 ip daddr 10.200.3.1 meta l4proto tcp accept");
}

TEST(Ruleset, BlockedPolicyNamesNoUserAndNoTun) {
    Table table = build_table(test_policy(Mode::blocked));
    for (const char* name : {"output", "input"}) {
        for (const Rule& rule : chain(table, name).rules) {
            EXPECT_EQ(rule.statement.find("skuid"), std::string::npos) << rule.name;
            EXPECT_EQ(rule.statement.find("ct mark"), std::string::npos) << rule.name;
            EXPECT_EQ(rule.name.find("tun"), std::string::npos) << rule.name;
        }
    }
}

TEST(Ruleset, LanRulesOnlyWhenAllowed) {
    for (const Rule& rule : chain(build_table(test_policy(Mode::tunnel)), "output").rules)
        EXPECT_EQ(rule.name.find("lan"), std::string::npos) << rule.name;
    const Chain output = chain(build_table(test_policy(Mode::tunnel, true)), "output");
    EXPECT_GT(position(output, "lan-ipv4"), position(output, "tun"));
}

TEST(Ruleset, NdpAndDhcpAreExact) {
    const Chain output = chain(build_table(test_policy(Mode::blocked)), "output");
    const Rule& ndp = output.rules[static_cast<std::size_t>(position(output, "ndp"))];
    EXPECT_NE(ndp.statement.find("ip6 hoplimit 255"), std::string::npos);
    EXPECT_NE(ndp.statement.find("ip6 daddr { fe80::/10, ff02::/16 }"), std::string::npos);
    const Rule& dhcp = output.rules[static_cast<std::size_t>(position(output, "dhcpv4-client"))];
    EXPECT_EQ(dhcp.statement, "meta nfproto ipv4 udp sport 68 udp dport 67 ip ttl set 1 accept");
}

TEST(Ruleset, RuleNamesAreUniqueWithinAChain) {
    for (const Chain& each : build_table(test_policy(Mode::tunnel, true)).chains) {
        auto list = names(each);
        EXPECT_EQ(std::set<std::string>(list.begin(), list.end()).size(), list.size()) << each.name;
    }
}

TEST(Ruleset, ReplaceScriptIsOneTransactionThatNeverFailsOnAMissingTable) {
    std::string script = render_replace_script(build_table(test_policy(Mode::tunnel)));
    EXPECT_EQ(script.rfind("table inet psiphon_filter {}\ndelete table inet psiphon_filter\ntable inet psiphon_filter {\n", 0), 0u);
    EXPECT_EQ(script.find("flush ruleset"), std::string::npos);
    EXPECT_EQ(render_delete_script(), "table inet psiphon_filter {}\ndelete table inet psiphon_filter\n");
}

TEST(Ruleset, TheMarkLetsOnlyTheTunnelUsersOwnPacketsThrough) {
    const Chain output = chain(build_table(test_policy(Mode::tunnel)), "output");
    EXPECT_LT(position(output, "tunnel-user-mark-is-its-own"), position(output, "tunnel-user-connections"));
    EXPECT_EQ(output.rules[static_cast<std::size_t>(position(output, "tunnel-user-mark-is-its-own"))].statement,
              "ct mark 0x50534901 ct direction original meta skuid != 1500 drop");
}

TEST(Ruleset, LinkRepliesNeverComeFromTheTun) {
    for (const Rule& rule : chain(build_table(test_policy(Mode::tunnel)), "input").rules) {
        if (rule.name.rfind("dhcp", 0) == 0 || rule.name == "ndp") {
            EXPECT_EQ(rule.statement.rfind("iifname != \"PsiphonTUN\"", 0), 0u) << rule.name;
        }
    }
}

}  // namespace
}  // namespace psi::fw
