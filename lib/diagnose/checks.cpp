#include "diagnose/checks.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/loopback_listener.hpp"
#include "core/privileges.hpp"
#include "core/process.hpp"
#include "fw/kill_switch.hpp"
#include "fw/policy.hpp"
#include "tun/address_plan.hpp"
#include "tun/resolver.hpp"
#include "tun/tun_device.hpp"
#include "tun/tun_network.hpp"

namespace psi::diagnose {
namespace {

using tun::ip_tool;
using tun::resolvectl_tool;

Check passed(std::string name, std::string detail) { return {std::move(name), true, std::move(detail), ""}; }
Check failed(std::string name, std::string detail, std::string fix) {
    return {std::move(name), false, std::move(detail), std::move(fix)};
}

std::vector<std::string> addresses_of(const std::string& device) {
    std::vector<std::string> addresses;
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return addresses;
    for (const ifaddrs* entry = list; entry; entry = entry->ifa_next) {
        if (!entry->ifa_addr || device != entry->ifa_name) continue;
        char text[INET6_ADDRSTRLEN] = {};
        const int family = entry->ifa_addr->sa_family;
        if (family == AF_INET)
            inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(entry->ifa_addr)->sin_addr, text, sizeof text);
        else if (family == AF_INET6)
            inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(entry->ifa_addr)->sin6_addr, text, sizeof text);
        else
            continue;
        addresses.emplace_back(text);
    }
    ::freeifaddrs(list);
    return addresses;
}

bool is_up(const std::string& device) {
    try {
        return std::stoul(read_file("/sys/class/net/" + device + "/flags"), nullptr, 16) & IFF_UP;
    } catch (const std::exception&) {
        return false;
    }
}

json::Value ip_json(const std::vector<std::string>& arguments) {
    std::vector<std::string> argv{ip_tool, "-j"};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return json::parse(run_checked(argv), "ip -j");
}

std::string text_of(const json::Value* value) {
    if (!value) return "";
    if (value->type() == json::Type::string) return value->as_string();
    if (value->type() == json::Type::number) return std::to_string(value->as_integer());
    return "";
}

// The rule psi-tun up makes: "not uidrange U-U lookup TABLE" at its priority.
bool has_tunnel_rule(const json::Value& rules, uid_t tunnel_uid) {
    for (const json::Value& rule : rules.as_array()) {
        if (text_of(rule.find("priority")) != std::to_string(tun::rule_priority)) continue;
        if (rule.find("not") && text_of(rule.find("uid_start")) == std::to_string(tunnel_uid) &&
            text_of(rule.find("uid_end")) == std::to_string(tunnel_uid) &&
            text_of(rule.find("table")) == std::to_string(tun::route_table))
            return true;
    }
    return false;
}

// A default route into the TUN (when it carries the family) and the unreachable default behind it.
std::string table_problem(const json::Value& routes, const std::string& tun_name, bool is_carried) {
    bool has_tun_default = false, has_fallback = false;
    for (const json::Value& route : routes.as_array()) {
        if (text_of(route.find("dst")) != "default") continue;
        if (text_of(route.find("dev")) == tun_name && !route.find("type")) has_tun_default = true;
        if (text_of(route.find("type")) == "unreachable") has_fallback = true;
    }
    if (!has_tun_default && is_carried) return "no default route into " + tun_name;
    if (!has_fallback) return "no unreachable fallback";
    return "";
}

std::string join(const std::vector<std::string>& words, const std::string& separator = ", ") {
    std::string text;
    for (const std::string& word : words) text += (text.empty() ? "" : separator) + word;
    return text;
}

// The fields of /proc/PID/status, by name.
std::string status_field(const std::string& status, const std::string& name) {
    std::istringstream lines(status);
    std::string line;
    while (std::getline(lines, line))
        if (line.rfind(name + ":", 0) == 0) {
            std::string value = line.substr(name.size() + 1);
            value.erase(0, value.find_first_not_of(" \t"));
            return value;
        }
    return "";
}

struct ProcessInfo {
    long pid = 0;
    std::string command;  // comm
    std::string arguments;
    std::string executable;  // what /proc/PID/exe points at
    uid_t uid = 0;
    bool has_no_capabilities = false;
};

std::vector<ProcessInfo> processes(const std::string& proc) {
    std::vector<ProcessInfo> found;
    DIR* directory = ::opendir(proc.c_str());
    if (!directory) return found;
    while (const dirent* entry = ::readdir(directory)) {
        const std::string name = entry->d_name;
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        try {
            ProcessInfo info;
            info.pid = std::stol(name);
            const std::string status = read_file(proc + "/" + name + "/status");
            info.command = status_field(status, "Name");
            std::string arguments = read_file(proc + "/" + name + "/cmdline");
            std::replace(arguments.begin(), arguments.end(), '\0', ' ');
            info.arguments = arguments;
            info.uid = static_cast<uid_t>(std::stoul(status_field(status, "Uid")));
            char target[4096] = {};
            const ssize_t length = ::readlink((proc + "/" + name + "/exe").c_str(), target, sizeof target - 1);
            if (length > 0) info.executable.assign(target, static_cast<std::size_t>(length));
            const std::string zero = "0000000000000000";
            info.has_no_capabilities = status_field(status, "CapEff") == zero && status_field(status, "CapPrm") == zero &&
                                       status_field(status, "CapBnd") == zero && status_field(status, "CapAmb") == zero &&
                                       status_field(status, "NoNewPrivs") == "1";
            found.push_back(std::move(info));
        } catch (const std::exception&) {
            // It ended while we looked.
        }
    }
    ::closedir(directory);
    return found;
}

// Whether process `pid` holds the TUN `device` attached (a /dev/net/tun descriptor whose
// fdinfo names it).
bool holds_tun(const std::string& proc, long pid, const std::string& device) {
    const std::string directory = proc + "/" + std::to_string(pid);
    DIR* descriptors = ::opendir((directory + "/fd").c_str());
    if (!descriptors) return false;
    bool is_held = false;
    while (const dirent* entry = ::readdir(descriptors)) {
        char target[64] = {};
        const std::string fd = entry->d_name;
        if (::readlink((directory + "/fd/" + fd).c_str(), target, sizeof target - 1) <= 0 ||
            std::string(target) != "/dev/net/tun")
            continue;
        if (const std::optional<std::string> info = read_file_if_readable(directory + "/fdinfo/" + fd);
            info && status_field(*info, "iff") == device)
            is_held = true;
    }
    ::closedir(descriptors);
    return is_held;
}

std::string mode_text(mode_t mode) {
    char text[8];
    std::snprintf(text, sizeof text, "%03o", mode & 07777);
    return text;
}

// Owner root and writable by no one else; "" when so.
std::string root_only_problem(const std::string& path, const struct stat& info) {
    if (info.st_uid != 0) return path + " belongs to uid " + std::to_string(info.st_uid) + ", not root";
    if (info.st_mode & (S_IWGRP | S_IWOTH)) return path + " is writable by others (mode " + mode_text(info.st_mode) + ")";
    return "";
}

}  // namespace

Check check_kill_switch(const Config& config) {
    const std::string name = "kill switch";
    const fw::KillSwitchStatus status = fw::KillSwitch(config).status();
    if (!status.is_loaded) return failed(name, "not loaded: traffic is not blocked", "psi-fw up");
    if (!status.is_intact())
        return failed(name,
                      "differs from the expected table: " + status.differences.front() +
                          (status.differences.size() > 1
                               ? " (and " + std::to_string(status.differences.size() - 1) + " more)"
                               : ""),
                      "psi-fw up (it restores the table); psi-fw status lists every difference");
    if (*status.mode == fw::Mode::blocked)
        return failed(name, "the boot policy: nothing passes, not even the tunnel", "psi up (or psi-fw up)");
    return passed(name, "intact, policy drop; only " + config.tunnel_user + " and " + config.tun_name +
                            " may reach the network" + (config.allow_lan ? " (and the LAN)" : ""));
}

Check check_tun(const Config& config) {
    const std::string name = "TUN";
    const std::string& device = config.tun_name;
    if (!tun::interface_exists(device)) return failed(name, device + " does not exist", "psi-tun up");
    const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
    const long owner = tun::tun_owner(device);
    if (owner != static_cast<long>(user.uid))
        return failed(name, device + " is not a TUN of " + user.name + "'s", "psi-tun down; psi-tun up");
    if (!is_up(device)) return failed(name, device + " is down", "psi-tun up");
    const std::vector<std::string> addresses = addresses_of(device);
    const tun::AddressPlan plan = tun::address_plan(config);
    std::vector<std::string> wanted_addresses = {plan.ipv4.address};
    if (tun::has_ipv6(device)) wanted_addresses.push_back(plan.ipv6.address);
    for (const std::string& wanted : wanted_addresses) {
        char canonical[INET6_ADDRSTRLEN] = {};
        unsigned char binary[16];
        const int family = wanted.find(':') == std::string::npos ? AF_INET : AF_INET6;
        if (inet_pton(family, wanted.c_str(), binary) == 1) inet_ntop(family, binary, canonical, sizeof canonical);
        if (std::find(addresses.begin(), addresses.end(), std::string(canonical)) == addresses.end())
            return failed(name, device + " lacks its address " + wanted, "psi-tun up");
    }
    std::vector<std::string> shown;  // the kernel's own link-local address says nothing
    for (const std::string& address : addresses)
        if (address.rfind("fe80:", 0) != 0) shown.push_back(address);
    return passed(name, device + " up, " + user.name + "'s, with " + join(shown));
}

Check check_routing(const Config& config) {
    const std::string name = "routing";
    const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
    const bool has_ipv6 = tun::has_ipv6(config.tun_name);
    for (const char* family : {"-4", "-6"}) {
        const bool is_ipv4 = std::string(family) == "-4";
        const std::string version = is_ipv4 ? "IPv4" : "IPv6";
        if (!is_ipv4 && !tun::has_ipv6_stack()) continue;
        if (!has_tunnel_rule(ip_json({family, "rule", "show"}), user.uid))
            return failed(name, version + ": no rule sends everyone but " + user.name + " into table " +
                                    std::to_string(tun::route_table),
                          "psi-tun up");
        const std::string problem =
            table_problem(ip_json({family, "route", "show", "table", std::to_string(tun::route_table)}), config.tun_name,
                          is_ipv4 || has_ipv6);
        if (!problem.empty())
            return failed(name, version + ": table " + std::to_string(tun::route_table) + " has " + problem, "psi-tun up");
    }
    return passed(name, "everyone but " + user.name + " routed into " + config.tun_name +
                            (has_ipv6 ? ", IPv4 and IPv6, unreachable behind it"
                                      : ", IPv4, unreachable behind it; IPv6 (disabled) unreachable"));
}

Check check_dns(const Config& config, const std::string& resolv_conf) {
    const std::string name = "DNS";
    std::vector<std::string> servers;
    try {
        servers = tun::nameservers_in(read_file(resolv_conf));
    } catch (const Error&) {
        return failed(name, "cannot read " + resolv_conf, "psi-tun up");
    }
    const tun::AddressPlan plan = tun::address_plan(config);
    if (servers == std::vector<std::string>{"127.0.0.53"}) {
        // systemd-resolved: the TUN's link must hold the in-tunnel resolver and route every domain.
        const ProcessResult dns = run_process({resolvectl_tool, "dns", config.tun_name});
        const ProcessResult domain = run_process({resolvectl_tool, "domain", config.tun_name});
        if (dns.exit_code != 0 || dns.output.find(plan.ipv4.dns) == std::string::npos)
            return failed(name, "systemd-resolved does not send queries to " + plan.ipv4.dns + " on " + config.tun_name,
                          "psi-tun up");
        if (domain.exit_code != 0 || domain.output.find("~.") == std::string::npos)
            return failed(name, "systemd-resolved does not route every domain to " + config.tun_name, "psi-tun up");
        return passed(name, "systemd-resolved asks " + plan.ipv4.dns + " on " + config.tun_name + " for every domain");
    }
    if (servers.empty()) return failed(name, resolv_conf + " names no resolver", "psi-tun up");
    for (const std::string& server : servers)
        if (server != plan.ipv4.dns && server != plan.ipv6.dns)
            return failed(name, resolv_conf + " names " + server + ", outside the tunnel",
                          "psi-tun down; psi-tun up (something rewrote it)");
    return passed(name, resolv_conf + " names only the in-tunnel resolver (" + join(servers) + ")");
}

std::vector<Check> check_processes(const Config& config, const std::string& programs_directory,
                                   const std::string& proc) {
    const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
    const std::vector<ProcessInfo> all = processes(proc);
    std::vector<Check> checks;
    const auto find = [&](const std::string& command, const std::string& argument) -> const ProcessInfo* {
        // Any user can name a process "psi-tun": only the installed program counts.
        for (const ProcessInfo& process : all)
            if (process.command == command && process.arguments.find(argument) != std::string::npos &&
                process.executable == programs_directory + "/" + command)
                return &process;
        return nullptr;
    };
    const auto expect = [&](const std::string& name, const ProcessInfo* process, const std::string& fix) {
        if (!process) return checks.push_back(failed(name, "not running", fix));
        if (process->uid != user.uid)
            return checks.push_back(failed(name, "runs as uid " + std::to_string(process->uid) + ", not " + user.name,
                                           "psi restart"));
        checks.push_back(passed(name, "running (pid " + std::to_string(process->pid) + ") as " + user.name));
    };
    // With Psiphon's packet tunnel, psi-connect --tun carries the TUN itself, as long as it
    // holds it (it lets it go when the server refuses the packet tunnel).
    const ProcessInfo* engine = find("psi-tun", " run");
    const ProcessInfo* packet_tunnel = find("psi-connect", " --tun ");
    if (packet_tunnel && !holds_tun(proc, packet_tunnel->pid, config.tun_name)) packet_tunnel = nullptr;
    expect("packet engine", engine ? engine : packet_tunnel, "psi up (or psi-tun run)");
    expect("psi-connect", find("psi-connect", ""), "psi up");

    std::vector<std::string> privileged;
    std::size_t count = 0;
    for (const ProcessInfo& process : all) {
        if (process.uid != user.uid) continue;
        ++count;
        if (!process.has_no_capabilities) privileged.push_back(process.command + " (pid " + std::to_string(process.pid) + ")");
    }
    if (!privileged.empty())
        checks.push_back(failed("tunnel privileges", "with capabilities or without no_new_privs: " + join(privileged),
                                "stop them; psi runs the tunnel with none"));
    else
        checks.push_back(passed("tunnel privileges", std::to_string(count) + " process" + (count == 1 ? "" : "es") + " of " +
                                                         user.name + ", none with any capability"));
    return checks;
}

Check check_proxy_ports(const Config& config, const std::string& proc_net) {
    const std::string name = "proxy ports";
    const uid_t tunnel_uid = lookup_user(config.tunnel_user, config.tunnel_group).uid;
    const int socks = local_socks_port(config);
    const int http = local_http_port(config);
    std::vector<std::string> foreign;
    for (const auto& [port, role] : {std::pair{socks, "SOCKS"}, {http, "HTTP"}})
        for (const PortListener& listener : listeners_on_port(static_cast<std::uint16_t>(port), proc_net))
            if (listener.uid != 0 && listener.uid != tunnel_uid)
                foreign.push_back("uid " + std::to_string(listener.uid) + " listens on " +
                                  address_and_port(listener.address, listener.port) + ", psi's " + role + " port");
    if (!foreign.empty())
        return failed(name, join(foreign, "; "),
                      "stop that program (it would receive what is sent to psi's proxies); then psi restart");
    return passed(name, "only root and " + config.tunnel_user + " listen on " + std::to_string(socks) + " and " +
                            std::to_string(http));
}

std::vector<Check> check_files(const Config& config, const std::string& programs_directory) {
    std::vector<Check> checks;
    struct stat info {};
    if (!config.path.empty() && ::stat(config.path.c_str(), &info) == 0) {
        if (info.st_uid != 0 || (info.st_mode & 077))
            checks.push_back(failed("config", config.path + " is uid " + std::to_string(info.st_uid) + "'s, mode " +
                                                  mode_text(info.st_mode) + ": it must be root's, mode 600",
                                    "chown root: " + config.path + "; chmod 600 " + config.path));
        else
            checks.push_back(passed("config", config.path + ": root's, mode " + mode_text(info.st_mode)));
    } else {
        checks.push_back(passed("config", "no file: the built-in defaults"));
    }

    std::vector<std::string> problems;
    if (::stat(programs_directory.c_str(), &info) == 0) {
        const std::string problem = root_only_problem(programs_directory, info);
        if (!problem.empty()) problems.push_back(problem);
    }
    for (const char* program : {"psi", "psi-fw", "psi-servers", "psi-connect", "psi-tun", "psi-diagnose"}) {
        const std::string path = programs_directory + "/" + program;
        if (::stat(path.c_str(), &info) != 0) continue;
        const std::string problem = root_only_problem(path, info);
        if (!problem.empty()) problems.push_back(problem);
    }
    if (problems.empty())
        checks.push_back(passed("programs", "root's, writable by no one else, in " + programs_directory));
    else
        checks.push_back(failed("programs", join(problems, "; "), "reinstall: sudo make install"));

    const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
    problems.clear();
    if (::lstat(config.data_root_directory.c_str(), &info) == 0) {
        if (!S_ISDIR(info.st_mode) || info.st_uid != user.uid || (info.st_mode & S_IWOTH))
            problems.push_back(config.data_root_directory + " must be a directory of " + user.name +
                               "'s, not writable by others");
    }
    if (::lstat(config.run_directory.c_str(), &info) == 0) {
        const std::string problem = S_ISDIR(info.st_mode) ? root_only_problem(config.run_directory, info)
                                                          : config.run_directory + " is not a directory";
        if (!problem.empty()) problems.push_back(problem);
    }
    if (problems.empty())
        checks.push_back(passed("state", config.data_root_directory + " " + user.name + "'s, " + config.run_directory +
                                             " root's"));
    else
        checks.push_back(failed("state", join(problems, "; "), "sudo make install sets them; or fix by hand"));
    return checks;
}

std::vector<Check> check_leaks(const Config& config, const fw::ProbeTargets& targets) {
    std::vector<Check> checks;
    const std::vector<fw::ProbeResult> probes = fw::run_leak_probes(targets, config.tun_name);
    std::vector<std::string> leaks;
    for (const fw::ProbeResult& probe : probes)
        if (!probe.passed)
            leaks.push_back(probe.name + (probe.device.empty() ? "" : " on " + probe.device) + ": " + probe.verdict);
    if (leaks.empty())
        checks.push_back(passed("leak probes", std::to_string(probes.size()) + " of " + std::to_string(probes.size()) +
                                                   " kept inside (TCP, UDP, DNS as " + targets.probe_user +
                                                   ", unbound and bound to each uplink)"));
    else
        checks.push_back(failed("leak probes", join(leaks, "; "), "psi-fw up; psi-fw verify shows each probe"));

    const std::string in_tunnel_dns = tun::address_plan(config).ipv4.dns;
    const fw::ProbeResult tunnel = fw::run_tunnel_probe(targets, in_tunnel_dns);
    if (tunnel.passed)
        checks.push_back(passed("through the tunnel", "a DNS query to " + in_tunnel_dns + " as " +
                                                          targets.probe_user + " was answered"));
    else
        checks.push_back(failed("through the tunnel", tunnel.verdict, "psi up; psi logs tells why no tunnel is up"));
    return checks;
}

}  // namespace psi::diagnose
