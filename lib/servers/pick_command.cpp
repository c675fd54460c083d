// psi-servers pick: the entry lines to try, best first, for psi-connect --entries -.
#include <cstdio>

#include "core/error.hpp"
#include "servers/command_output.hpp"
#include "servers/commands.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {

int pick_command(const CommandLine& line, const Config& config) {
    Selection selection = line.selection;
    for (const std::string& protocol : selection.protocols)
        if (!is_known_protocol(protocol))
            throw Error("--protocol " + protocol + " is not a Psiphon tunnel protocol", exit_status::usage);
    if (selection.region.empty() && !line.is_any_region)
        selection.region = config.psiphon.egress_region;
    if (selection.protocols.empty())
        selection.protocols = config.psiphon.limit_tunnel_protocols;
    if (line.seed != 0) selection.seed = line.seed;

    const Store store = read_store(store_path(line.store_path, config));
    const auto picked = select_servers(store, selection, now_seconds());
    if (picked.empty())
        throw Error("no stored server matches (region " + (selection.region.empty() ? "any" : selection.region) +
                    ", protocols " + join(selection.protocols.empty() ? default_protocols() : selection.protocols, " ") +
                    ", API over SSH); import or fetch a server list");
    std::string output;
    for (const StoredEntry* entry : picked) output += encode_entry_line(entry->entry_with_local_fields()) + "\n";
    std::fwrite(output.data(), 1, output.size(), stdout);
    return exit_status::ok;
}

}  // namespace psi::servers
