// psi-servers export: every stored entry as a line that import reads back.
#include <cstdio>

#include "core/error.hpp"
#include "servers/commands.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {

int export_command(const CommandLine& line, const Config& config) {
    const Store store = read_store(store_path(line.store_path, config));
    std::string output;
    for (const StoredEntry& entry : store.entries()) output += encode_entry_line(entry.entry()) + "\n";
    std::fwrite(output.data(), 1, output.size(), stdout);
    return exit_status::ok;
}

}  // namespace psi::servers
