// psi: the whole VPN in one command. up starts the supervisor (lib/psi/supervisor) in the
// background and waits for the tunnel; down, reload and restart signal it; status and logs read
// what it publishes. The kill switch is never lowered but by `psi down --open`.
#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/program_directory.hpp"
#include "psi/lifecycle.hpp"
#include "psi/log_tail.hpp"
#include "psi/status_report.hpp"

using namespace psi;
using namespace psi::wrapper;

int main(int argc, char** argv) {
    CommonOptions common;
    UpRequest up_request;
    bool is_open = false;
    bool is_follow = false;
    int timeout = 60;
    int lines = 50;
    CLI::App app{"psi: a Psiphon VPN for the whole machine, closed when the tunnel is down.\n"
                 "up brings up the kill switch, the TUN and the tunnel; down takes the tunnel down and keeps\n"
                 "the kill switch.",
                 "psi"};
    add_common_options(app, common);
    app.require_subcommand(1);
    auto* up_command = app.add_subcommand("up", "Kill switch, TUN, tunnel; waits for the tunnel (psi keeps it up)");
    up_command->add_flag("--foreground", up_request.is_foreground, "Run the supervisor in the foreground (systemd)");
    up_command->add_flag("--allow-lan", up_request.is_allow_lan, "Let the LAN through the kill switch (never DNS)");
    up_command->add_option("--mode", up_request.mode,
                           "packet: Psiphon's packet tunnel; socks: psi-tun run into the SOCKS proxy; auto: packet where offered")
        ->check(CLI::IsMember({"auto", "packet", "socks"}))
        ->capture_default_str();
    up_command->add_option("--timeout", timeout, "Seconds to wait for the tunnel")->capture_default_str();
    auto* down_command = app.add_subcommand("down", "Stop the tunnel and the TUN; the kill switch stays up");
    down_command->add_flag("--open", is_open, "Also remove the kill switch (traffic leaves unprotected)");
    auto* reload_command = app.add_subcommand("reload", "Restart psi-connect only; the kill switch and the TUN stay");
    reload_command->add_option("--timeout", timeout, "Seconds to wait for the new tunnel")->capture_default_str();
    auto* restart_command = app.add_subcommand("restart", "down, then up (the kill switch stays up throughout)");
    restart_command->add_option("--timeout", timeout, "Seconds to wait for the tunnel")->capture_default_str();
    auto* status_command = app.add_subcommand("status", "One screen: the tunnel, the kill switch, the engine (root)");
    auto* logs_command = app.add_subcommand("logs", "psi's log: the supervisor, psi-connect and psi-tun run");
    logs_command->add_option("-n,--lines", lines, "How many of the last lines")->capture_default_str();
    logs_command->add_flag("-f,--follow", is_follow, "Keep printing new lines");
    app.footer("Examples:\n  sudo psi up\n  psi status\n  sudo psi reload\n  sudo psi down\n"
               "Exit status: 0 ok, 1 failure (status: no tunnel), 2 usage, 3 the kill switch is not intact.\n"
               "See psi(8).");

    return run_program(app, argc, argv, common, [&]() -> int {
        const Config config = load_config_from(common);
        if (*up_command) {
            up_request.config_path = common.config_path;
            up_request.timeout = timeout;
            return up(config, up_request);
        }
        if (*down_command) return down(config, common.config_path, is_open);
        if (*reload_command) return reload(config, timeout);
        if (*restart_command) return restart(config, common.config_path, timeout);
        if (*status_command) return report_status(config, {common.config_path, program_directory(), common.is_json});
        if (*logs_command) return show_log(config, lines, is_follow);
        return exit_status::usage;
    });
}
