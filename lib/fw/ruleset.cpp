#include "fw/ruleset.hpp"

#include <cstdio>

namespace psi::fw {
namespace {

const std::string lan_ipv4 = "{ 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16 }";
const std::string lan_multicast_ipv4 = "{ 224.0.0.0/24, 239.0.0.0/8, 255.255.255.255 }";
const std::string lan_ipv6 = "{ fe80::/10, fc00::/7 }";
const std::string lan_multicast_ipv6 = "{ ff01::/16, ff02::/16, ff03::/16, ff04::/16, ff05::/16 }";

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

std::string mark_text() {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", tunnel_conntrack_mark);
    return text;
}

// Rules common to both modes that keep a link working: DHCP and NDP, and only on the link.
// A DHCPv4 renew goes unicast to the server that gave the lease; nftables cannot tell whether
// an address is on the link (fib's type is the same for it and for a host on the Internet), so
// the TTL of 1 makes the first router drop anything sent to an address beyond it.
void add_link_rules_out(std::vector<Rule>& rules) {
    rules.push_back({"dhcpv4-client", "meta nfproto ipv4 udp sport 68 udp dport 67 ip ttl set 1 accept"});
    rules.push_back({"dhcpv6-client",
                     "ip6 saddr fe80::/10 udp sport 546 udp dport 547 ip6 daddr { ff02::1:2, ff05::1:3 } accept"});
    rules.push_back({"ndp", "icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 "
                            "ip6 daddr { fe80::/10, ff02::/16 } accept"});
}

void add_link_rules_in(std::vector<Rule>& rules, const std::string& tun) {
    rules.push_back({"dhcpv4-server", "iifname != " + tun + " meta nfproto ipv4 udp sport 67 udp dport 68 accept"});
    rules.push_back({"dhcpv6-server", "iifname != " + tun + " ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept"});
    rules.push_back({"ndp", "iifname != " + tun +
                                " icmpv6 type { nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } ip6 hoplimit 255 accept"});
}

Chain output_chain(const Policy& policy) {
    const bool is_tunnel = policy.mode == Mode::tunnel;
    const std::string tun = quoted(policy.tun_name);
    Chain chain{"output", "output", "filter", "drop", {}};
    auto& rules = chain.rules;
    rules.push_back({"loopback", "oif \"lo\" accept"});
    if (is_tunnel) {
        // A marked connection carries only the tunnel user's packets: another user's socket
        // bound onto the same addresses and ports gains nothing from the mark.
        rules.push_back({"tunnel-user-mark-is-its-own", "ct mark " + mark_text() + " ct direction original meta skuid != " +
                                                            std::to_string(policy.tunnel_uid) + " drop"});
        rules.push_back({"tunnel-user-connections", "ct mark " + mark_text() + " accept"});
        rules.push_back({"tunnel-user-new", "meta skuid " + std::to_string(policy.tunnel_uid) +
                                                " oifname != " + tun + " ct state new ct mark set " +
                                                mark_text() + " accept"});
    }
    add_link_rules_out(rules);
    if (is_tunnel) {
        rules.push_back({"dns-in-tunnel-ipv4", "oifname " + tun + " ip daddr " + policy.dns_ipv4 +
                                                   " meta l4proto { tcp, udp } th dport { 53, 853 } accept"});
        rules.push_back({"dns-in-tunnel-ipv6", "oifname " + tun + " ip6 daddr " + policy.dns_ipv6 +
                                                   " meta l4proto { tcp, udp } th dport { 53, 853 } accept"});
    }
    // After the tunnel user (its bootstrap resolver) and before the TUN and the LAN, so that
    // no name is resolved anywhere but at the in-tunnel resolver: DNS, DoT and DoQ, NetBIOS
    // name queries, mDNS and LLMNR.
    rules.push_back({"dns-elsewhere-udp", "meta l4proto udp th dport { 53, 137, 853, 5353, 5355 } counter reject"});
    rules.push_back({"dns-elsewhere-tcp",
                     "meta l4proto tcp th dport { 53, 853, 5355 } counter reject with tcp reset"});
    if (is_tunnel) rules.push_back({"tun", "oifname " + tun + " accept"});
    if (policy.allow_lan) {
        rules.push_back({"lan-not-tun-network-ipv4",
                         "ip daddr " + policy.tun_network_ipv4 + " counter reject with icmpx admin-prohibited"});
        rules.push_back({"lan-not-tun-network-ipv6",
                         "ip6 daddr " + policy.tun_network_ipv6 + " counter reject with icmpx admin-prohibited"});
        rules.push_back({"lan-ipv4", "ip daddr " + lan_ipv4 + " accept"});
        rules.push_back({"lan-multicast-ipv4", "ip daddr " + lan_multicast_ipv4 + " accept"});
        rules.push_back({"lan-ipv6", "ip6 daddr " + lan_ipv6 + " accept"});
        rules.push_back({"lan-multicast-ipv6", "ip6 daddr " + lan_multicast_ipv6 + " accept"});
    }
    // Reject rather than drop, so that applications fail at once instead of after
    // retransmission timeouts; the counters let `verify` prove a probe was stopped here.
    rules.push_back({"reject-tcp", "meta l4proto tcp counter reject with tcp reset"});
    rules.push_back({"reject", "counter reject with icmpx admin-prohibited"});
    return chain;
}

Chain input_chain(const Policy& policy) {
    const std::string tun = quoted(policy.tun_name);
    Chain chain{"input", "input", "filter", "drop", {}};
    auto& rules = chain.rules;
    if (policy.mode == Mode::tunnel) {
        // The engine's NAT source is never a local address: from loopback it is a local program
        // posing as a NAT leg (bound with IP_FREEBIND) to reach the engine's listener.
        rules.push_back({"loopback-not-nat-source-ipv4", "iif \"lo\" ip saddr " + policy.nat_source_ipv4 + " drop"});
        rules.push_back({"loopback-not-nat-source-ipv6", "iif \"lo\" ip6 saddr " + policy.nat_source_ipv6 + " drop"});
    }
    rules.push_back({"loopback", "iif \"lo\" accept"});
    if (policy.mode == Mode::tunnel) {
        rules.push_back({"tunnel-user-connections", "ct mark " + mark_text() + " accept"});
        rules.push_back({"tun-established", "iifname " + tun + " ct state established,related accept"});
        // The packet engine's NAT legs: new TCP connections from its NAT source (.3) to its
        // listener on the TUN address (docs/packet-engine.md §3.11, docs/architecture.md §4). Nothing else may come in.
        rules.push_back({"tun-engine-ipv4", "iifname " + tun + " ip saddr " + policy.nat_source_ipv4 +
                                                " ip daddr " + policy.tun_address_ipv4 + " meta l4proto tcp accept"});
        rules.push_back({"tun-engine-ipv6", "iifname " + tun + " ip6 saddr " + policy.nat_source_ipv6 +
                                                " ip6 daddr " + policy.tun_address_ipv6 + " meta l4proto tcp accept"});
    }
    add_link_rules_in(rules, tun);
    if (policy.allow_lan) {
        rules.push_back({"tun-network-spoofed-ipv4", "ip saddr " + policy.tun_network_ipv4 + " drop"});
        rules.push_back({"tun-network-spoofed-ipv6", "ip6 saddr " + policy.tun_network_ipv6 + " drop"});
        rules.push_back({"lan-ipv4", "ip saddr " + lan_ipv4 + " accept"});
        rules.push_back({"lan-ipv6", "ip6 saddr " + lan_ipv6 + " accept"});
    }
    return chain;
}

Chain forward_chain() {
    Chain chain{"forward", "forward", "filter", "drop", {}};
    chain.rules.push_back({"reject", "counter reject with icmpx admin-prohibited"});
    return chain;
}

// Packets for the TUN's addresses that arrive on any other interface (CVE-2019-14899).
Chain prerouting_chain(const Policy& policy) {
    const std::string tun = quoted(policy.tun_name);
    Chain chain{"prerouting", "prerouting", "raw", "accept", {}};
    chain.rules.push_back({"tun-network-from-outside-ipv4", "iifname != " + tun + " ip daddr " +
                                                                policy.tun_network_ipv4 +
                                                                " fib saddr type != local drop"});
    chain.rules.push_back({"tun-network-from-outside-ipv6", "iifname != " + tun + " ip6 daddr " +
                                                                policy.tun_network_ipv6 +
                                                                " fib saddr type != local drop"});
    return chain;
}

std::string table_header() { return std::string("table ") + table_family + " " + table_name; }

}  // namespace

const Chain* Table::find_chain(const std::string& name) const {
    for (const Chain& chain : chains)
        if (chain.name == name) return &chain;
    return nullptr;
}

Table build_table(const Policy& policy) {
    return Table{{prerouting_chain(policy), input_chain(policy), forward_chain(), output_chain(policy)}};
}

std::string render_table(const Table& table) {
    std::string text = table_header() + " {\n";
    text += "\tcomment \"psi kill switch, managed by psi-fw\"\n";
    for (const Chain& chain : table.chains) {
        text += "\tchain " + chain.name + " {\n";
        text += "\t\ttype filter hook " + chain.hook + " priority " + chain.priority + "; policy " +
                chain.policy + ";\n";
        for (const Rule& rule : chain.rules)
            text += "\t\t" + rule.statement + " comment " + quoted(rule.name) + "\n";
        text += "\t}\n";
    }
    text += "}\n";
    return text;
}

std::string render_replace_script(const Table& table) {
    return table_header() + " {}\ndelete " + table_header() + "\n" + render_table(table);
}

std::string render_delete_script() {
    return table_header() + " {}\ndelete " + table_header() + "\n";
}

}  // namespace psi::fw
