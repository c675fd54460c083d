// psi-servers: the Psiphon server store. Declares the command line; each command is one call
// into psi::servers (servers/commands.hpp).
#include <utility>
#include <vector>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "psi/tunnel_proxy.hpp"
#include "servers/commands.hpp"

namespace {

using namespace psi;
using servers::CommandLine;

void add_fetch_options(CLI::App* command, CommandLine& line) {
    command->add_option("--url", line.url, "Remote server list URL (default: RemoteServerListUrl)");
    command->add_option("--proxy", line.proxy, "Proxy, such as socks5h://127.0.0.1:1081 (through the tunnel)");
    command->add_option("--resolver", line.resolvers,
                        "Resolve the list's host at this DNS server (IP) only, not the system's (the bootstrap)")
        ->excludes("--proxy");
    command->add_option("--ca-file", line.ca_file, "CA certificates to trust instead of the system's")
        ->check(CLI::ExistingFile);
    command->add_option("--max-size", line.max_mebibytes, "Largest list accepted, in MiB")
        ->capture_default_str()->check(CLI::Range(1, 4096));
    command->add_option("--timeout", line.timeout_seconds, "Seconds to connect, and the longest stall")
        ->capture_default_str()->check(CLI::Range(1, 3600));
    command->add_flag("--force", line.is_forced, "Download even if unchanged (and, for refresh, not yet stale)");
}

}  // namespace

int main(int argc, char** argv) {
    CommonOptions common;
    CommandLine line;
    line.running_tunnel_proxy = wrapper::running_tunnel_proxy;
    CLI::App app{"psi-servers: the Psiphon server list of psi: import, verified remote list, store, pick.",
                 "psi-servers"};
    add_common_options(app, common);
    app.add_option("--store", line.store_path, "Server store file (default: DataRootDirectory/servers)");
    app.require_subcommand(1);
    app.footer("Examples:\n  psi-servers import server_list.txt\n  psi-servers fetch\n"
               "  psi-servers pick --region CA --count 10 | psi-connect --entries -\n"
               "Exit status: 0 ok, 1 failure (the store is unchanged), 2 usage, 4 refresh: nothing changed.\n"
               "See psi-servers(8).");
    std::vector<std::pair<CLI::App*, servers::Command>> commands;
    const auto command = [&](const char* name, const char* description, servers::Command run) {
        commands.emplace_back(app.add_subcommand(name, description), run);
        return commands.back().first;
    };

    auto* import = command("import", "Import entry lines from FILE or - (an embedded server list)",
                           servers::import_command);
    import->add_option("file", line.input, "File of entry lines, or - for stdin")->capture_default_str();
    import->add_option("--source", line.source, "EMBEDDED, REMOTE, DISCOVERY or TARGET")->capture_default_str();
    import->add_flag("--force", line.is_forced, "Replace stored entries even without a higher configurationVersion");
    auto* fetch = command("fetch", "Download, verify and store the remote server list", servers::fetch_command);
    add_fetch_options(fetch, line);
    auto* refresh = command("refresh", "fetch for cron and timers: rate-limited, quiet unless it fails",
                            servers::refresh_command);
    add_fetch_options(refresh, line);
    refresh->add_flag("--through-tunnel", line.is_through_tunnel,
                      "Fetch only through psi's tunnel (its SOCKS proxy); nothing while no tunnel is up")
        ->excludes("--proxy")->excludes("--resolver");
    refresh->add_option("--stale-hours", line.stale_hours, "Fetch only when the last success is older")
        ->capture_default_str();
    command("list", "List the stored servers", servers::list_command)
        ->add_option("--region", line.selection.region, "Only this region (ISO 3166 code)");
    auto* show = command("show", "Show one stored entry as JSON (secrets redacted)", servers::show_command);
    show->add_option("address", line.address, "Server IP address")->required();
    show->add_flag("--secrets", line.is_secret_shown, "Also show passwords and keys");
    auto* pick = command("pick", "Print entry lines to try, affinity first, for psi-connect --entries -",
                         servers::pick_command);
    pick->add_option("--region", line.selection.region, "Egress region (default: EgressRegion)");
    pick->add_flag("--any-region", line.is_any_region, "Any region, whatever EgressRegion says");
    pick->add_option("--protocol", line.selection.protocols, "OSSH, SSH, ... (default: LimitTunnelProtocols)");
    pick->add_option("--count", line.selection.count, "At most N entries (default: all)");
    pick->add_option("--seed", line.seed, "Fixed shuffle (for tests)");
    command("regions", "Count the servers pick can choose, per region", servers::regions_command);
    command("remove", "Remove a server from the store", servers::remove_command)
        ->add_option("address", line.address, "Server IP address")->required();
    command("export", "Print every stored entry as lines (psi-servers import reads them)", servers::export_command);
    command("record", "Record what tunnels through stored servers did, from outcome lines (for psi)",
            servers::record_command)
        ->add_option("file", line.input, "File of outcome lines, or - for stdin")->capture_default_str();

    return run_program(app, argc, argv, common, [&]() -> int {
        const Config config = load_config_from(common);
        line.is_json = common.is_json;
        for (const auto& [subcommand, run] : commands)
            if (*subcommand) return run(line, config);
        return exit_status::usage;
    });
}
