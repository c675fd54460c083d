// psi-tun: the TUN device, its routes and DNS, and the packet engine that carries it into a
// SOCKS5 proxy. Wires the command line to psi::tun and psi::engine.
#include <unistd.h>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "engine/engine_run.hpp"
#include "engine/stats_report.hpp"
#include "tun/network_report.hpp"

int main(int argc, char** argv) {
    using namespace psi;
    CommonOptions common;
    bool is_allow_lan = false;
    CLI::App app{"psi-tun: the TUN device of psi, the routes that send everyone but the tunnel user into it,\n"
                 "and the system's DNS pointed at the in-tunnel resolver.",
                 "psi-tun"};
    add_common_options(app, common);
    app.require_subcommand(1);
    app.footer("Examples:\n  psi-tun up\n  psi-tun run --socks 127.0.0.1:1080\n  psi-tun stats\n  psi-tun down\n"
               "Exit status: 0 ok, 1 failure, 2 usage. See psi-tun(8).");
    auto* up = app.add_subcommand("up", "Create the TUN, its addresses, routes, rules and DNS (idempotent)");
    up->add_flag("--allow-lan", is_allow_lan, "LAN routes of the main table first (never DNS)");
    auto* down = app.add_subcommand("down", "Undo exactly what up did, also after a crash (idempotent)");
    engine::RunOptions run_options;
    bool is_udp_disabled = false;
    bool is_fast_path_disabled = false;
    auto* run = app.add_subcommand("run", "Carry the TUN's TCP and UDP into a SOCKS5 proxy (as the tunnel user)");
    run->add_option("--socks", run_options.socks, "The SOCKS5 proxy, HOST:PORT (default 127.0.0.1:LocalSocksProxyPort)");
    run->add_option("--dns-resolver", run_options.dns_resolver, "Where DNS to the in-tunnel address goes (TunDnsResolver)");
    run->add_flag("--no-udp", is_udp_disabled, "No UDP ASSOCIATE: DNS over TCP, other UDP refused");
    run->add_flag("--no-fast-path", is_fast_path_disabled, "NAT every TCP segment in the engine, none in the kernel");
    auto* stats = app.add_subcommand("stats", "The running engine's counters: flows, bytes, drops by reason");

    return run_program(app, argc, argv, common, [&]() -> int {
        if (*run || *stats) {
            const Config config = load_config_from(common);
            if (*stats) return engine::report_engine_stats(config, common.is_json);
            run_options.is_udp_enabled = !is_udp_disabled;
            run_options.is_fast_path_enabled = !is_fast_path_disabled;
            run_options.is_json = common.is_json;
            return engine::run_engine(config, run_options);
        }
        if (::geteuid() != 0) throw Error("psi-tun up and down change the network: run them as root");
        Config config = tun::config_for_network_change(common, static_cast<bool>(*up));
        if (is_allow_lan) config.allow_lan = true;
        if (*up) return tun::report_bring_up(config, common.is_json);
        (void)down;
        return tun::report_bring_down(config, common.is_json);
    });
}
