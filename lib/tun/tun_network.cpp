#include "tun/tun_network.hpp"

#include <sys/stat.h>

#include <cerrno>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/privileges.hpp"
#include "core/process.hpp"
#include "tun/resolver.hpp"
#include "tun/tun_device.hpp"

namespace psi::tun {
namespace {

const char* const families[] = {"-4", "-6"};

ResolverSettings resolver_settings(const Config& config) {
    return ResolverSettings{config.tun_name, config.tun_dns_ipv4, config.tun_dns_ipv6, "/etc/resolv.conf",
                            config.run_directory};
}

json::Value load_state(const std::string& path) {
    try {
        return json::parse(read_file(path), path);
    } catch (const Error&) {
        return json::Value();
    }
}

void save_state(const std::string& path, const json::Value& state) { replace_file(path, state.dump_pretty() + "\n", 0600); }

bool has_rule(const char* family, int priority) {
    return !run_checked({"ip", family, "rule", "show", "pref", std::to_string(priority)}).empty();
}

void delete_rules(int priority) {
    for (const char* family : families)
        while (has_rule(family, priority)) run_checked({"ip", family, "rule", "del", "pref", std::to_string(priority)});
}

// `ip -6 route flush` leaves unreachable routes behind: those go one by one.
void flush_table() {
    const std::string table = std::to_string(route_table);
    for (const char* family : families) {
        run_process({"ip", family, "route", "flush", "table", table});
        while (run_process({"ip", family, "route", "del", "unreachable", "default", "metric", "4294967295", "table",
                            table})
                   .exit_code == 0) {
        }
    }
}

std::string read_rp_filter(const std::string& tun) {
    try {
        std::string value = read_file("/proc/sys/net/ipv4/conf/" + tun + "/rp_filter");
        return value.substr(0, value.find('\n'));
    } catch (const Error&) {
        return "";
    }
}

void write_rp_filter(const std::string& tun, const std::string& value) {
    replace_or_rewrite("/proc/sys/net/ipv4/conf/" + tun + "/rp_filter", value + "\n");
}

}  // namespace

std::string state_path(const Config& config) { return config.run_directory + "/tun.json"; }

UpReport bring_up(const Config& config) {
    if (::mkdir(config.run_directory.c_str(), 0755) != 0 && errno != EEXIST)
        throw_system_error("cannot create " + config.run_directory, errno);
    const std::string path = state_path(config);
    FileLock lock(path + ".lock");
    json::Value state = load_state(path);
    if (!state.is_object()) state = json::Object{};
    const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
    const std::string& tun = config.tun_name;
    UpReport report;

    report.created_device = create_persistent_tun(tun, user.uid, user.gid);
    if (report.created_device) state.set("createdDevice", true);
    state.set("device", tun);
    save_state(path, state);
    run_checked({"ip", "addr", "replace", config.tun_address_ipv4, "dev", tun});
    run_checked({"ip", "-6", "addr", "replace", config.tun_address_ipv6, "dev", tun, "nodad"});
    run_checked({"ip", "link", "set", "dev", tun, "mtu", std::to_string(mtu), "txqueuelen",
                 std::to_string(tx_queue_length), "up"});

    // Injected packets arrive on the TUN with remote sources: strict rp_filter drops them.
    if (!state.find("rpFilter")) state.set("rpFilter", read_rp_filter(tun));
    write_rp_filter(tun, "2");
    save_state(path, state);

    state.set("routes", true);
    save_state(path, state);
    for (const char* family : families) {
        run_checked({"ip", family, "route", "replace", "default", "dev", tun, "table", std::to_string(route_table)});
        run_checked({"ip", family, "route", "replace", "unreachable", "default", "metric", "4294967295", "table",
                     std::to_string(route_table)});
    }
    const std::string uid_range = std::to_string(user.uid) + "-" + std::to_string(user.uid);
    for (const char* family : families) {
        if (config.allow_lan && !has_rule(family, lan_rule_priority))
            run_checked({"ip", family, "rule", "add", "not", "dport", "53", "lookup", "main", "suppress_prefixlength",
                         "0", "pref", std::to_string(lan_rule_priority)});
        if (!has_rule(family, rule_priority))
            run_checked({"ip", family, "rule", "add", "not", "uidrange", uid_range, "lookup",
                         std::to_string(route_table), "pref", std::to_string(rule_priority)});
    }

    if (const json::Value* dns = state.find("dns")) {
        report.dns_method = dns->find("method") ? dns->find("method")->as_string() : "";
    } else {
        state.set("dns", point_resolver_at_tunnel(resolver_settings(config)));
        save_state(path, state);
        report.dns_method = state.find("dns")->find("method")->as_string();
    }
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
    const json::Value state = load_state(path);
    if (const json::Value* dns = state.find("dns")) restore_resolver(resolver_settings(config), *dns);
    delete_rules(rule_priority);
    delete_rules(lan_rule_priority);
    flush_table();
    const json::Value* device = state.find("device");
    const std::string tun = device && device->is_string() ? device->as_string() : config.tun_name;
    if (state.find("createdDevice")) {
        if (interface_exists(tun)) run_checked({"ip", "link", "del", "dev", tun});
    } else if (const json::Value* rp_filter = state.find("rpFilter");
               rp_filter && rp_filter->is_string() && !rp_filter->as_string().empty() && interface_exists(tun)) {
        write_rp_filter(tun, rp_filter->as_string());
    }
    const bool had_state = state.is_object();
    ::unlink(path.c_str());
    ::unlink((path + ".lock").c_str());
    return had_state;
}

}  // namespace psi::tun
