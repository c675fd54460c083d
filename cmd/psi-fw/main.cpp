// psi-fw: the nftables kill switch. Wires the command line to psi::fw and prints results.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "fw/kill_switch.hpp"
#include "fw/leak_probe.hpp"
#include "fw/watchdog.hpp"

namespace {

using namespace psi;

struct Options {
    CommonOptions common;
    bool is_allow_lan = false;
    bool is_boot_policy = false;
    fw::ProbeTargets probe_targets;
};

Config load(const Options& options) {
    Config config = load_config_from(options.common);
    if (options.is_allow_lan) config.allow_lan = true;
    return config;
}

json::Value status_json(const fw::KillSwitchStatus& status) {
    json::Array differences;
    for (const auto& difference : status.differences) differences.emplace_back(difference);
    json::Value document = json::Object{};
    document.set("loaded", status.is_loaded);
    document.set("policy", status.mode ? json::Value(fw::mode_name(*status.mode)) : json::Value());
    document.set("intact", status.is_intact());
    document.set("differences", std::move(differences));
    document.set("rejectedPackets", static_cast<std::uint64_t>(status.rejected_packets));
    return document;
}

void print_status(const fw::KillSwitchStatus& status, const Config& config) {
    if (!status.is_loaded) {
        std::puts("kill switch: not loaded, traffic is not blocked (run: psi-fw up)");
        return;
    }
    if (status.is_intact()) {
        if (*status.mode == fw::Mode::tunnel)
            std::printf("kill switch: up, intact; only %s and %s may reach the network%s\n",
                        config.tunnel_user.c_str(), config.tun_name.c_str(),
                        config.allow_lan ? " (and the LAN)" : "");
        else
            std::printf("kill switch: blocked (boot policy), intact; nothing leaves%s\n",
                        config.allow_lan ? " but LAN traffic" : "");
        return;
    }
    std::printf("kill switch: loaded but differs from the expected table (%zu difference%s)\n",
                status.differences.size(), status.differences.size() == 1 ? "" : "s");
    for (const auto& difference : status.differences) std::printf("  %s\n", difference.c_str());
}

// At boot a broken config must not leave the machine open: the blocked policy is loaded with
// the default settings instead.
Config load_for(const Options& options, fw::Mode mode) {
    try {
        return load(options);
    } catch (const Error& error) {
        if (mode != fw::Mode::blocked) throw;
        log::warning(std::string(error.what()) + "; loading the blocked policy with default settings");
        Config config;
        config.allow_lan = options.is_allow_lan;
        return config;
    }
}

int command_apply(const Options& options, fw::Mode mode) {
    const Config config = load_for(options, mode);
    fw::KillSwitch kill_switch(config);
    const fw::Change change = kill_switch.apply(mode);
    const bool is_changed = change == fw::Change::applied;
    if (options.common.is_json) {
        json::Value document = json::Object{};
        document.set("policy", fw::mode_name(mode));
        document.set("changed", is_changed);
        document.set("allowLan", config.allow_lan);
        print_json(document);
    } else if (mode == fw::Mode::tunnel) {
        std::printf("kill switch %s: only %s and %s may reach the network%s\n",
                    is_changed ? "up" : "already up", config.tunnel_user.c_str(), config.tun_name.c_str(),
                    config.allow_lan ? " (and the LAN)" : "");
    } else {
        std::printf("kill switch %s: nothing leaves%s\n", is_changed ? "blocked" : "already blocked",
                    config.allow_lan ? " but LAN traffic" : "");
    }
    return exit_status::ok;
}

int command_down(const Options& options) {
    // Removing the table needs no setting, so a broken config never keeps the switch locked.
    fw::KillSwitch kill_switch(Config{});
    const bool was_loaded = kill_switch.remove();
    if (options.common.is_json) {
        json::Value document = json::Object{};
        document.set("removed", was_loaded);
        print_json(document);
    } else if (was_loaded) {
        std::printf("kill switch down: table %s %s removed, other tables untouched; traffic is NOT blocked\n",
                    fw::table_family, fw::table_name);
    } else {
        std::puts("kill switch was not loaded; nothing removed");
    }
    return exit_status::ok;
}

int command_status(const Options& options) {
    const Config config = load(options);
    const fw::KillSwitchStatus status = fw::KillSwitch(config).status();
    if (options.common.is_json) print_json(status_json(status));
    else print_status(status, config);
    return status.is_intact() ? exit_status::ok : exit_status::not_secure;
}

int command_verify(const Options& options) {
    const Config config = load(options);
    const fw::KillSwitchStatus status = fw::KillSwitch(config).status();
    const auto probes = fw::run_leak_probes(options.probe_targets, config.tun_name);
    bool is_secure = status.is_intact();
    for (const auto& probe : probes) is_secure = is_secure && probe.passed;

    if (options.common.is_json) {
        json::Array probe_list;
        for (const auto& probe : probes) {
            json::Value item = json::Object{};
            item.set("probe", probe.name);
            item.set("device", probe.device.empty() ? json::Value() : json::Value(probe.device));
            item.set("passed", probe.passed);
            item.set("verdict", probe.verdict);
            probe_list.push_back(std::move(item));
        }
        json::Value document = json::Object{};
        document.set("secure", is_secure);
        document.set("killSwitch", status_json(status));
        document.set("probes", std::move(probe_list));
        print_json(document);
    } else {
        print_status(status, config);
        for (const auto& probe : probes) {
            std::string where = probe.device.empty() ? "any route" : "bound to " + probe.device;
            std::printf("%-4s %-9s %-16s %s\n", probe.passed ? "ok" : "FAIL", probe.name.c_str(),
                        where.c_str(), probe.verdict.c_str());
        }
        std::puts(is_secure ? "verified: nothing leaves outside the tunnel" : "NOT SECURE: see the lines above");
    }
    return is_secure ? exit_status::ok : exit_status::not_secure;
}

int command_print(const Options& options) {
    const fw::Mode mode = options.is_boot_policy ? fw::Mode::blocked : fw::Mode::tunnel;
    std::cout << fw::KillSwitch(load(options)).script(mode);
    return exit_status::ok;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"psi-fw: the nftables kill switch of psi. Only the tunnel user and the TUN may\n"
                 "reach the network; everything else is rejected, IPv4 and IPv6, DNS included.",
                 "psi-fw"};
    add_common_options(app, options.common);
    app.require_subcommand(1);
    app.footer("Examples:\n  psi-fw up\n  psi-fw status --json\n  psi-fw watch &\n  psi-fw print | nft -c -f -\n"
               "Exit status: 0 ok, 1 failure (previous rules kept), 2 usage, 3 not secure.\n"
               "See psi-fw(8) and psi.conf(5).");

    auto* up = app.add_subcommand("up", "Load the kill switch (replaces the table in one transaction)");
    auto* down = app.add_subcommand("down", "Remove the kill switch table (traffic is no longer blocked)");
    auto* status = app.add_subcommand("status", "Compare the kernel's table with the expected one");
    auto* verify = app.add_subcommand("verify", "status, then probe as another user: TCP and DNS must be rejected");
    auto* print = app.add_subcommand("print", "Print the nft script that up would load");
    auto* boot = app.add_subcommand("boot", "Load the blocked policy (early boot, before the network)");
    auto* watch = app.add_subcommand("watch", "Keep the kill switch in place: restore it at once when anyone removes or changes it");
    watch->add_flag("--boot", options.is_boot_policy, "Keep the blocked policy instead of the tunnel policy");
    for (auto* command : {up, print, boot, status, verify, watch})
        command->add_flag("--allow-lan", options.is_allow_lan, "Also allow the private LAN ranges (not DNS)");
    print->add_flag("--boot", options.is_boot_policy, "Print the blocked policy that boot loads");
    verify->add_option("--probe-ipv4", options.probe_targets.ipv4, "IPv4 address the probes try")->capture_default_str();
    verify->add_option("--probe-ipv6", options.probe_targets.ipv6, "IPv6 address the probes try")->capture_default_str();
    verify->add_option("--probe-port", options.probe_targets.tcp_port, "TCP port the probes try")->capture_default_str();
    verify->add_option("--probe-user", options.probe_targets.probe_user, "User the probes run as")->capture_default_str();

    return run_program(app, argc, argv, options.common, [&]() -> int {
        if (!*print && ::geteuid() != 0)
            throw Error("psi-fw changes and reads the kernel's firewall: run it as root", exit_status::failure);
        if (*up) return command_apply(options, fw::Mode::tunnel);
        if (*boot) return command_apply(options, fw::Mode::blocked);
        if (*down) return command_down(options);
        if (*status) return command_status(options);
        if (*verify) return command_verify(options);
        if (*watch) {
            const fw::Mode mode = options.is_boot_policy ? fw::Mode::blocked : fw::Mode::tunnel;
            return fw::Watchdog(load_for(options, mode), mode).run();
        }
        return command_print(options);
    });
}
