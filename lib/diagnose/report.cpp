#include "diagnose/report.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/error.hpp"
#include "core/output.hpp"
#include "core/program_directory.hpp"
#include "diagnose/checks.hpp"

namespace psi::diagnose {
namespace {

void print_checks(const std::vector<Check>& checks) {
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

json::Value checks_json(const std::vector<Check>& checks, bool is_secure) {
    json::Array list;
    for (const auto& check : checks) {
        json::Value item = json::Object{{"check", check.name}, {"passed", check.passed}, {"detail", check.detail}};
        item.set("fix", check.passed ? json::Value() : json::Value(check.fix));
        list.push_back(std::move(item));
    }
    return json::Object{{"secure", is_secure}, {"checks", std::move(list)}};
}

}  // namespace

int report_diagnosis(const Config& config, const ReportOptions& options) {
    std::vector<Check> checks;
    checks.push_back(check_kill_switch(config));
    checks.push_back(check_tun(config));
    checks.push_back(check_routing(config));
    checks.push_back(check_dns(config));
    const std::string programs = program_directory();
    for (auto& check : check_processes(config, programs)) checks.push_back(std::move(check));
    checks.push_back(check_proxy_ports(config));
    for (auto& check : check_files(config, programs)) checks.push_back(std::move(check));
    if (!options.is_without_probes)
        for (auto& check : check_leaks(config, options.probe_targets)) checks.push_back(std::move(check));

    bool is_secure = true;
    for (const auto& check : checks) is_secure = is_secure && check.passed;
    if (options.is_json) print_json(checks_json(checks, is_secure));
    else print_checks(checks);
    return is_secure ? exit_status::ok : exit_status::not_secure;
}

}  // namespace psi::diagnose
