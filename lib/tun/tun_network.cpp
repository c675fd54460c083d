#include "tun/tun_network.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <vector>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/privileges.hpp"
#include "core/process.hpp"
#include "tun/address_plan.hpp"
#include "tun/resolver.hpp"
#include "tun/tun_device.hpp"

namespace psi::tun {
namespace {

std::vector<const char*> families() { return has_ipv6_stack() ? std::vector{"-4", "-6"} : std::vector{"-4"}; }

ResolverSettings resolver_settings(const Config& config) {
    const AddressPlan plan = address_plan(config);
    return ResolverSettings{config.tun_name, plan.ipv4.dns, plan.ipv6.dns, "/etc/resolv.conf", config.run_directory};
}

// The record, or null when there is none. A record that cannot be read is an error: guessing
// would undo the wrong things or forget some.
json::Value load_state(const std::string& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return json::Value();
    json::Value state = json::parse(read_file(path), path);
    if (!state.is_object()) throw Error(path + " is not a psi-tun record; move it away after checking the network");
    if (const json::Value* dns = state.find("dns");
        dns && (!dns->find("method") || !dns->find("method")->is_string()))
        throw Error(path + ": the dns record has no method; move it away after checking /etc/resolv.conf");
    return state;
}

void save_state(const std::string& path, const json::Value& state) {
    replace_file(path, state.dump_pretty() + "\n", 0600);
}

// The text `ip rule show` gives for psi's rules at a priority; "" when there is none.
std::string rule_at(const char* family, int priority) {
    return run_checked({ip_tool, family, "rule", "show", "pref", std::to_string(priority)});
}

// psi's rules, deleted by their whole selector so that another tool's rule at the same
// priority is never the one removed.
std::vector<std::string> own_rule_selector(int priority) {
    if (priority == lan_rule_priority)
        return {"not", "dport", "53", "lookup", "main", "suppress_prefixlength", "0"};
    return {"lookup", std::to_string(route_table)};
}

bool has_own_rule(const char* family, int priority) {
    const std::string rules = rule_at(family, priority);
    const std::string mark = priority == lan_rule_priority ? "dport 53 lookup main suppress_prefixlength 0"
                                                           : "lookup " + std::to_string(route_table);
    return rules.find(mark) != std::string::npos;
}

void delete_rules_in(const char* family, int priority) {
    while (has_own_rule(family, priority)) {
        std::vector<std::string> command{ip_tool, family, "rule", "del", "pref", std::to_string(priority)};
        for (const auto& word : own_rule_selector(priority)) command.push_back(word);
        run_checked(command);
    }
}

void delete_rules(int priority) {
    for (const char* family : families()) delete_rules_in(family, priority);
}

// Makes psi's rule at `priority` exactly `selector`, replacing a stale one of psi's.
void ensure_rule(const char* family, int priority, const std::vector<std::string>& selector, const std::string& wanted) {
    if (rule_at(family, priority).find(wanted) != std::string::npos) return;
    delete_rules_in(family, priority);
    std::vector<std::string> command{ip_tool, family, "rule", "add"};
    command.insert(command.end(), selector.begin(), selector.end());
    command.insert(command.end(), {"pref", std::to_string(priority)});
    run_checked(command);
}

// `ip -6 route flush` leaves unreachable routes behind: those go one by one.
void flush_table() {
    const std::string table = std::to_string(route_table);
    for (const char* family : families()) {
        run_process({ip_tool, family, "route", "flush", "table", table});
        while (run_process({ip_tool, family, "route", "del", "unreachable", "default", "metric", "4294967295", "table",
                            table})
                   .exit_code == 0) {
        }
    }
}

std::string rp_filter_path(const std::string& tun) { return "/proc/sys/net/ipv4/conf/" + tun + "/rp_filter"; }

// The kernel answers ARP on an interface by the larger of this and the interface's own value.
const std::string arp_ignore_path = "/proc/sys/net/ipv4/conf/all/arp_ignore";

// A sysctl's value as text, "" when it cannot be read.
std::string read_sysctl(const std::string& path) {
    try {
        std::string value = read_file(path);
        return value.substr(0, value.find('\n'));
    } catch (const Error&) {
        return "";
    }
}

}  // namespace

std::string state_path(const Config& config) { return config.run_directory + "/tun.json"; }

bool has_ipv6_stack() { return ::access("/proc/sys/net/ipv6", F_OK) == 0; }

bool has_ipv6(const std::string& tun) {
    try {
        return has_ipv6_stack() && read_file("/proc/sys/net/ipv6/conf/" + tun + "/disable_ipv6") == "0\n";
    } catch (const Error&) {
        return false;
    }
}

std::vector<std::string> recorded_uplink_resolvers(const Config& config) {
    const json::Value state = load_state(state_path(config));
    const json::Value* dns = state.is_object() ? state.find("dns") : nullptr;
    return dns ? uplink_resolvers(*dns) : std::vector<std::string>{};
}

UpReport bring_up(const Config& config) {
    if (::mkdir(config.run_directory.c_str(), 0755) != 0 && errno != EEXIST)
        throw_system_error("cannot create " + config.run_directory, errno);
    const std::string path = state_path(config);
    FileLock lock(path + ".lock");
    json::Value state = load_state(path);
    if (!state.is_object()) state = json::Object{};
    const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
    const std::string& tun = config.tun_name;
    const AddressPlan plan = address_plan(config);
    UpReport report;

    // Each change is recorded before it is made, so that down can undo it after a crash.
    state.set("device", tun);
    if (!interface_exists(tun)) state.set("createdDevice", true);
    save_state(path, state);
    report.created_device = create_persistent_tun(tun, user.uid, user.gid);
    run_checked({ip_tool, "addr", "replace", plan.ipv4.interface_address, "dev", tun});
    // IPv6 disabled by sysctl (net.ipv6.conf.*.disable_ipv6, a common leak fix) or absent
    // (ipv6.disable=1): the TUN carries IPv4 alone; the kill switch blocks IPv6 all the same.
    report.has_ipv6 = has_ipv6(tun);
    if (report.has_ipv6) run_checked({ip_tool, "-6", "addr", "replace", plan.ipv6.interface_address, "dev", tun, "nodad"});
    else log::debug(tun + ": IPv6 is disabled; IPv4 only");
    run_checked({ip_tool, "link", "set", "dev", tun, "mtu", std::to_string(mtu), "txqueuelen",
                 std::to_string(tx_queue_length), "up"});
    log::debug(tun + ": addresses, MTU " + std::to_string(mtu) + ", queue " + std::to_string(tx_queue_length));

    // Injected packets arrive on the TUN with remote sources: strict rp_filter drops them.
    if (!state.find("rpFilter")) {
        state.set("rpFilter", read_sysctl(rp_filter_path(tun)));
        save_state(path, state);
    }
    rewrite_in_place(rp_filter_path(tun), "2\n");

    // With arp_ignore 0 the uplink answers ARP for the TUN's well-known address, and anyone on
    // the LAN can find psi users by asking for it. A stricter value stays as it is.
    if (!state.find("arpIgnore")) {
        state.set("arpIgnore", read_sysctl(arp_ignore_path));
        save_state(path, state);
    }
    if (read_sysctl(arp_ignore_path) == "0") rewrite_in_place(arp_ignore_path, "1\n");

    // Without IPv6 on the TUN, everyone's IPv6 still goes by psi's table, to "unreachable".
    const std::string table = std::to_string(route_table);
    for (const char* family : families()) {
        if (family == std::string("-4") || report.has_ipv6)
            run_checked({ip_tool, family, "route", "replace", "default", "dev", tun, "table", table});
        run_checked({ip_tool, family, "route", "replace", "unreachable", "default", "metric", "4294967295", "table", table});
    }
    const std::string uid_range = std::to_string(user.uid) + "-" + std::to_string(user.uid);
    for (const char* family : families()) {
        if (config.allow_lan)
            ensure_rule(family, lan_rule_priority, {"not", "dport", "53", "lookup", "main", "suppress_prefixlength", "0"},
                        "dport 53 lookup main suppress_prefixlength 0");
        else
            delete_rules_in(family, lan_rule_priority);
        ensure_rule(family, rule_priority, {"not", "uidrange", uid_range, "lookup", table},
                    "uidrange " + uid_range + " lookup " + table);
    }
    log::debug("everyone but uid " + std::to_string(user.uid) + " routed by table " + table);

    const ResolverSettings resolver = resolver_settings(config);
    if (!state.find("dns")) {
        state.set("dns", plan_resolver_change(resolver));
        save_state(path, state);
        apply_resolver_change(resolver, *state.find("dns"));
    } else if (state.find("dns")->find("method")->as_string() == "systemd-resolved") {
        // systemd-resolved keeps them per link: a TUN made anew, or a resolved that was not
        // running at the last up, has none. Setting them again changes nothing otherwise.
        apply_resolver_change(resolver, *state.find("dns"));
    }
    report.dns_method = state.find("dns")->find("method")->as_string();
    log::debug("DNS through " + report.dns_method);
    return report;
}

bool bring_down(const Config& config) {
    const std::string path = state_path(config);
    struct stat info {};
    if (::stat(config.run_directory.c_str(), &info) != 0) {
        delete_rules(rule_priority);
        delete_rules(lan_rule_priority);
        flush_table();
        return false;
    }
    FileLock lock(path + ".lock");
    json::Value state = load_state(path);
    const bool had_state = state.is_object();
    if (!had_state) state = json::Object{};

    // Undo in reverse, saving the record after each step: a failed down can be run again.
    if (const json::Value* dns = state.find("dns")) {
        const json::Value record = *dns;
        restore_resolver(resolver_settings(config), record);
        state.erase("dns");
        save_state(path, state);
        if (const json::Value* backup = record.find("backup")) ::unlink(backup->as_string().c_str());
    }
    delete_rules(rule_priority);
    delete_rules(lan_rule_priority);
    flush_table();
    const json::Value* device = state.find("device");
    const std::string tun = device && device->is_string() ? device->as_string() : config.tun_name;
    if (state.find("createdDevice")) {
        if (interface_exists(tun)) run_checked({ip_tool, "link", "del", "dev", tun});
    } else if (const json::Value* rp_filter = state.find("rpFilter");
               rp_filter && rp_filter->is_string() && !rp_filter->as_string().empty() && interface_exists(tun)) {
        rewrite_in_place(rp_filter_path(tun), rp_filter->as_string() + "\n");
    }
    if (const json::Value* arp_ignore = state.find("arpIgnore");
        arp_ignore && arp_ignore->is_string() && !arp_ignore->as_string().empty())
        rewrite_in_place(arp_ignore_path, arp_ignore->as_string() + "\n");
    ::unlink(path.c_str());
    return had_state;
}

}  // namespace psi::tun
