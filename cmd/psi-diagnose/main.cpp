// psi-diagnose: proves the security state of psi, one check per line, and says how to fix
// what fails. Wires the command line to psi::diagnose.
#include <unistd.h>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "diagnose/report.hpp"

int main(int argc, char** argv) {
    using namespace psi;
    CommonOptions common;
    diagnose::ReportOptions options;
    CLI::App app{"psi-diagnose: proves the security state of psi (kill switch, TUN, routing, DNS, the tunnel's\n"
                 "processes and privileges, files, and active leak probes); each check says how to fix a failure.",
                 "psi-diagnose"};
    add_common_options(app, common);
    app.add_option("--probe-ipv4", options.probe_targets.ipv4, "IPv4 address the leak probes try")->capture_default_str();
    app.add_option("--probe-ipv6", options.probe_targets.ipv6, "IPv6 address the leak probes try")->capture_default_str();
    app.add_option("--probe-port", options.probe_targets.tcp_port, "TCP and UDP port the leak probes try")->capture_default_str();
    app.add_option("--probe-user", options.probe_targets.probe_user, "User the probes run as")->capture_default_str();
    app.add_flag("--no-probes", options.is_without_probes, "Skip the active probes (leaks and through the tunnel)");
    app.footer("Examples:\n  sudo psi-diagnose\n  sudo psi-diagnose --json | jq .secure\n"
               "Exit status: 0 every check passed, 1 failure to run, 2 usage, 3 a check failed. See psi-diagnose(8).");

    return run_program(app, argc, argv, common, [&]() -> int {
        if (::geteuid() != 0) throw Error("psi-diagnose reads the kill switch and runs probes as another user: run it as root");
        options.is_json = common.is_json;
        return diagnose::report_diagnosis(load_config_from(common), options);
    });
}
