// psi-diagnose: proves the security state of psi, one check per line, and says how to fix
// what fails. Wires the command line to psi::diagnose.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <string>
#include <vector>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/output.hpp"
#include "diagnose/checks.hpp"

namespace {

std::string programs_directory() {
    char path[PATH_MAX] = {};
    const ssize_t length = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (length <= 0) return "/usr/local/sbin";
    const std::string executable(path, static_cast<std::size_t>(length));
    return executable.substr(0, executable.rfind('/'));
}

void print_checks(const std::vector<psi::diagnose::Check>& checks) {
    std::size_t width = 0;
    for (const auto& check : checks) width = std::max(width, check.name.size());
    std::size_t failures = 0;
    for (const auto& check : checks) {
        std::printf("%-4s  %-*s  %s\n", check.passed ? "ok" : "FAIL", static_cast<int>(width), check.name.c_str(),
                    check.detail.c_str());
        if (!check.passed) {
            ++failures;
            std::printf("%-4s  %-*s  fix: %s\n", "", static_cast<int>(width), "", check.fix.c_str());
        }
    }
    if (failures == 0)
        std::printf("all %zu checks passed: the tunnel is up and nothing leaves outside it\n", checks.size());
    else
        std::printf("%zu of %zu checks failed: not secure, or no tunnel\n", failures, checks.size());
}

psi::json::Value checks_json(const std::vector<psi::diagnose::Check>& checks, bool is_secure) {
    psi::json::Array list;
    for (const auto& check : checks) {
        psi::json::Value item = psi::json::Object{{"check", check.name}, {"passed", check.passed}, {"detail", check.detail}};
        item.set("fix", check.passed ? psi::json::Value() : psi::json::Value(check.fix));
        list.push_back(std::move(item));
    }
    return psi::json::Object{{"secure", is_secure}, {"checks", std::move(list)}};
}

}  // namespace

int main(int argc, char** argv) {
    using namespace psi;
    CommonOptions common;
    fw::ProbeTargets targets;
    bool is_without_probes = false;
    CLI::App app{"psi-diagnose: proves the security state of psi (kill switch, TUN, routing, DNS, the tunnel's\n"
                 "processes and privileges, files, and active leak probes); each check says how to fix a failure.",
                 "psi-diagnose"};
    add_common_options(app, common);
    app.add_option("--probe-ipv4", targets.ipv4, "IPv4 address the leak probes try")->capture_default_str();
    app.add_option("--probe-ipv6", targets.ipv6, "IPv6 address the leak probes try")->capture_default_str();
    app.add_option("--probe-port", targets.tcp_port, "TCP and UDP port the leak probes try")->capture_default_str();
    app.add_option("--probe-user", targets.probe_user, "User the probes run as")->capture_default_str();
    app.add_flag("--no-probes", is_without_probes, "Skip the active probes (leaks and through the tunnel)");
    app.footer("Examples:\n  sudo psi-diagnose\n  sudo psi-diagnose --json | jq .secure\n"
               "Exit status: 0 every check passed, 1 failure to run, 2 usage, 3 a check failed. See psi-diagnose(8).");

    return run_program(app, argc, argv, common, [&]() -> int {
        if (::geteuid() != 0) throw Error("psi-diagnose reads the kill switch and runs probes as another user: run it as root");
        const Config config = load_config_from(common);
        std::vector<diagnose::Check> checks;
        checks.push_back(diagnose::check_kill_switch(config));
        checks.push_back(diagnose::check_tun(config));
        checks.push_back(diagnose::check_routing(config));
        checks.push_back(diagnose::check_dns(config));
        const std::string programs = programs_directory();
        for (auto& check : diagnose::check_processes(config, programs)) checks.push_back(std::move(check));
        checks.push_back(diagnose::check_proxy_ports(config));
        for (auto& check : diagnose::check_files(config, programs)) checks.push_back(std::move(check));
        if (!is_without_probes)
            for (auto& check : diagnose::check_leaks(config, targets)) checks.push_back(std::move(check));

        bool is_secure = true;
        for (const auto& check : checks) is_secure = is_secure && check.passed;
        if (common.is_json) print_json(checks_json(checks, is_secure));
        else print_checks(checks);
        return is_secure ? exit_status::ok : exit_status::not_secure;
    });
}
