#include "tun/network_report.hpp"

#include <cstdio>
#include <string>

#include "core/error.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "tun/tun_network.hpp"

namespace psi::tun {

Config config_for_network_change(const CommonOptions& common, bool is_up) {
    try {
        return load_config_from(common);
    } catch (const Error& error) {
        if (is_up) throw;
        log::warning(std::string(error.what()) + "; using the default settings");
        return Config{};
    }
}

int report_bring_up(const Config& config, bool is_json) {
    const UpReport report = bring_up(config);
    if (is_json) {
        print_json(json::Object{{"device", config.tun_name},
                                {"createdDevice", report.created_device},
                                {"ipv6", report.has_ipv6},
                                {"dns", report.dns_method}});
    } else {
        const std::string addresses =
            config.tun_address_ipv4 + (report.has_ipv6 ? " and " + config.tun_address_ipv6 : " (IPv6 is disabled)");
        std::printf("%s up: %s; everyone but %s routed into it; DNS via %s (%s)\n", config.tun_name.c_str(),
                    addresses.c_str(), config.tunnel_user.c_str(), config.tun_dns_ipv4.c_str(),
                    report.dns_method.c_str());
    }
    return exit_status::ok;
}

int report_bring_down(const Config& config, bool is_json) {
    const bool had_record = bring_down(config);
    if (is_json) print_json(json::Object{{"restored", had_record}});
    else if (had_record) std::printf("%s down: routes, rules and DNS restored\n", config.tun_name.c_str());
    else std::puts("no record of psi-tun up: cleared psi's rules and routing table only");
    return exit_status::ok;
}

}  // namespace psi::tun
