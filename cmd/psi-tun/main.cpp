// psi-tun: the TUN device, its routes and DNS, and the packet engine that carries it into a
// SOCKS5 proxy. Wires the command line to psi::tun.
#include <unistd.h>

#include <cstdio>
#include <initializer_list>
#include <string>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "engine/engine_run.hpp"
#include "engine/engine_stats.hpp"
#include "tun/tun_network.hpp"

namespace {

// The counters as a person reads them. The file comes from the tunnel user: only numbers and
// the drop reasons psi knows are shown, whatever else it holds.
const psi::json::Value* member(const psi::json::Value& document, std::initializer_list<const char*> path) {
    const psi::json::Value* value = &document;
    for (const char* key : path) {
        if (value->type() != psi::json::Type::object || !(value = value->find(key))) return nullptr;
    }
    return value;
}

bool is_true(const psi::json::Value& document, std::initializer_list<const char*> path) {
    const psi::json::Value* value = member(document, path);
    return value && value->is_boolean() && value->as_boolean();
}

std::int64_t number(const psi::json::Value& document, std::initializer_list<const char*> path) {
    const psi::json::Value* value = member(document, path);
    if (!value || value->type() != psi::json::Type::number) return 0;
    try {
        return value->as_integer();
    } catch (const psi::Error&) {
        return 0;  // not a whole number
    }
}

std::string megabytes(std::int64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
    return text;
}

void print_stats(const psi::json::Value& document) {
    std::printf("packet engine (pid %lld): %lld TCP flows open (%lld since start), %lld UDP sessions\n",
                static_cast<long long>(number(document, {"pid"})),
                static_cast<long long>(number(document, {"stats", "tcp", "flowsActive"})),
                static_cast<long long>(number(document, {"stats", "tcp", "flowsOpened"})),
                static_cast<long long>(number(document, {"stats", "udp", "sessionsActive"})));
    std::printf("TCP %s up, %s down; UDP %s up, %s down\n",
                megabytes(number(document, {"stats", "tcp", "bytesUp"})).c_str(),
                megabytes(number(document, {"stats", "tcp", "bytesDown"})).c_str(),
                megabytes(number(document, {"stats", "udp", "bytesUp"})).c_str(),
                megabytes(number(document, {"stats", "udp", "bytesDown"})).c_str());
    std::string dropped;
    for (std::size_t i = 0; i < static_cast<std::size_t>(psi::engine::Drop::count_); ++i) {
        const char* reason = psi::engine::drop_name(static_cast<psi::engine::Drop>(i));
        if (const std::int64_t count = number(document, {"stats", "dropped", reason}))
            dropped += " " + std::to_string(count) + " " + reason;
    }
    if (!dropped.empty()) std::printf("not passed on:%s\n", dropped.c_str());
    if (is_true(document, {"stats", "fastPath", "on"}))
        std::printf("kernel fast path: %lld TCP segments NATed in the kernel\n",
                    static_cast<long long>(number(document, {"stats", "fastPath", "packets"})));
}

}  // namespace

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
            if (*stats) {
                const json::Value document = engine::request_engine_stats(config);
                if (common.is_json) print_json(document);
                else print_stats(document);
                return exit_status::ok;
            }
            run_options.is_udp_enabled = !is_udp_disabled;
            run_options.is_fast_path_enabled = !is_fast_path_disabled;
            run_options.is_json = common.is_json;
            return engine::run_engine(config, run_options);
        }
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
        (void)down;
        const bool had_record = tun::bring_down(config);
        if (common.is_json) print_json(json::Object{{"restored", had_record}});
        else if (had_record) std::printf("%s down: routes, rules and DNS restored\n", config.tun_name.c_str());
        else std::puts("no record of psi-tun up: cleared psi's rules and routing table only");
        return exit_status::ok;
    });
}
