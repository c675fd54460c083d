// psi-fw: the nftables kill switch. Wires the command line to psi::fw's commands.
#include <unistd.h>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "fw/commands.hpp"

using namespace psi;

int main(int argc, char** argv) {
    fw::CommandOptions options;
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
        if (*up) return fw::command_apply(options, fw::Mode::tunnel);
        if (*boot) return fw::command_apply(options, fw::Mode::blocked);
        if (*down) return fw::command_down(options);
        if (*status) return fw::command_status(options);
        if (*verify) return fw::command_verify(options);
        if (*watch) return fw::command_watch(options);
        return fw::command_print(options);
    });
}
