#include "fw/commands.hpp"

#include <cstdio>
#include <iostream>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "fw/watchdog.hpp"

namespace psi::fw {
namespace {

Config load(const CommandOptions& options) {
    Config config = load_config_from(options.common);
    if (options.is_allow_lan) config.allow_lan = true;
    return config;
}

json::Value status_json(const KillSwitchStatus& status) {
    json::Array differences;
    for (const auto& difference : status.differences) differences.emplace_back(difference);
    json::Value document = json::Object{};
    document.set("loaded", status.is_loaded);
    document.set("policy", status.mode ? json::Value(mode_name(*status.mode)) : json::Value());
    document.set("intact", status.is_intact());
    document.set("differences", std::move(differences));
    document.set("rejectedPackets", static_cast<std::uint64_t>(status.rejected_packets));
    return document;
}

void print_status(const KillSwitchStatus& status, const Config& config) {
    if (!status.is_loaded) {
        std::puts("kill switch: not loaded, traffic is not blocked (run: psi-fw up)");
        return;
    }
    if (status.is_intact()) {
        if (*status.mode == Mode::tunnel)
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
Config load_for(const CommandOptions& options, Mode mode) {
    try {
        return load(options);
    } catch (const Error& error) {
        if (mode != Mode::blocked) throw;
        log::warning(std::string(error.what()) + "; loading the blocked policy with default settings");
        Config config;
        config.allow_lan = options.is_allow_lan;
        return config;
    }
}

}  // namespace

int command_apply(const CommandOptions& options, Mode mode) {
    const Config config = load_for(options, mode);
    KillSwitch kill_switch(config);
    const Change change = kill_switch.apply(mode);
    const bool is_changed = change == Change::applied;
    if (options.common.is_json) {
        json::Value document = json::Object{};
        document.set("policy", mode_name(mode));
        document.set("changed", is_changed);
        document.set("allowLan", config.allow_lan);
        print_json(document);
    } else if (mode == Mode::tunnel) {
        std::printf("kill switch %s: only %s and %s may reach the network%s\n",
                    is_changed ? "up" : "already up", config.tunnel_user.c_str(), config.tun_name.c_str(),
                    config.allow_lan ? " (and the LAN)" : "");
    } else {
        std::printf("kill switch %s: nothing leaves%s\n", is_changed ? "blocked" : "already blocked",
                    config.allow_lan ? " but LAN traffic" : "");
    }
    return exit_status::ok;
}

int command_down(const CommandOptions& options) {
    // Removing the table needs no setting, so a broken config never keeps the switch locked.
    KillSwitch kill_switch(Config{});
    const bool was_loaded = kill_switch.remove();
    if (options.common.is_json) {
        json::Value document = json::Object{};
        document.set("removed", was_loaded);
        print_json(document);
    } else if (was_loaded) {
        std::printf("kill switch down: table %s %s removed, other tables untouched; traffic is NOT blocked\n",
                    table_family, table_name);
    } else {
        std::puts("kill switch was not loaded; nothing removed");
    }
    return exit_status::ok;
}

int command_status(const CommandOptions& options) {
    const Config config = load(options);
    const KillSwitchStatus status = KillSwitch(config).status();
    if (options.common.is_json) print_json(status_json(status));
    else print_status(status, config);
    return status.is_intact() ? exit_status::ok : exit_status::not_secure;
}

int command_verify(const CommandOptions& options) {
    const Config config = load(options);
    const KillSwitchStatus status = KillSwitch(config).status();
    const auto probes = run_leak_probes(options.probe_targets, config.tun_name);
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

int command_print(const CommandOptions& options) {
    const Mode mode = options.is_boot_policy ? Mode::blocked : Mode::tunnel;
    std::cout << KillSwitch(load(options)).script(mode);
    return exit_status::ok;
}

int command_watch(const CommandOptions& options) {
    const Mode mode = options.is_boot_policy ? Mode::blocked : Mode::tunnel;
    return Watchdog(load_for(options, mode), mode).run();
}

}  // namespace psi::fw
