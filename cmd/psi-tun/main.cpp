// psi-tun: the TUN device, its routes and DNS. Wires the command line to psi::tun.
#include <unistd.h>

#include <cstdio>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "tun/tun_network.hpp"

int main(int argc, char** argv) {
    using namespace psi;
    CommonOptions common;
    bool is_allow_lan = false;
    CLI::App app{"psi-tun: the TUN device of psi, the routes that send everyone but the tunnel user into it,\n"
                 "and the system's DNS pointed at the in-tunnel resolver.",
                 "psi-tun"};
    add_common_options(app, common);
    app.require_subcommand(1);
    app.footer("Examples:\n  psi-tun up\n  psi-tun down\n"
               "Exit status: 0 ok, 1 failure, 2 usage. See psi-tun(8).");
    auto* up = app.add_subcommand("up", "Create the TUN, its addresses, routes, rules and DNS (idempotent)");
    up->add_flag("--allow-lan", is_allow_lan, "LAN routes of the main table first (never DNS)");
    app.add_subcommand("down", "Undo exactly what up did, also after a crash (idempotent)");

    return run_program(app, argc, argv, common, [&]() -> int {
        if (::geteuid() != 0) throw Error("psi-tun up and down change the network: run them as root");
        Config config;
        try {
            config = load_config_from(common);
        } catch (const Error& error) {
            // down must never be locked out by a broken config: it only needs the defaults' paths.
            if (*up) throw;
            log::warning(std::string(error.what()) + "; using the default settings");
        }
        if (is_allow_lan) config.allow_lan = true;
        if (*up) {
            const tun::UpReport report = tun::bring_up(config);
            if (common.is_json) {
                print_json(json::Object{{"device", config.tun_name},
                                        {"createdDevice", report.created_device},
                                        {"dns", report.dns_method}});
            } else {
                std::printf("%s up: %s and %s; everyone but %s routed into it; DNS via %s (%s)\n",
                            config.tun_name.c_str(), config.tun_address_ipv4.c_str(), config.tun_address_ipv6.c_str(),
                            config.tunnel_user.c_str(), config.tun_dns_ipv4.c_str(), report.dns_method.c_str());
            }
            return exit_status::ok;
        }
        const bool had_record = tun::bring_down(config);
        if (common.is_json) print_json(json::Object{{"restored", had_record}});
        else if (had_record) std::printf("%s down: routes, rules and DNS restored\n", config.tun_name.c_str());
        else std::puts("no record of psi-tun up: cleared psi's rules and routing table only");
        return exit_status::ok;
    });
}
