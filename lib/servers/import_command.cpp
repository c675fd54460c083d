// psi-servers import: entry lines from a file or stdin into the store.
#include <cerrno>
#include <fstream>
#include <iostream>

#include "core/error.hpp"
#include "servers/command_output.hpp"
#include "servers/commands.hpp"
#include "servers/remote_list.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {

int import_command(const CommandLine& line, const Config& config) {
    const auto source = parse_source(line.source);
    if (!source) throw Error("--source must be EMBEDDED, REMOTE, DISCOVERY or TARGET", exit_status::usage);
    // Opened before the store's directory is entered: as root, it may be a file only root reads.
    std::ifstream file;
    if (line.input != "-") {
        file.open(line.input, std::ios::binary);
        if (!file) throw_system_error("cannot read " + line.input, errno);
    }
    std::istream& input = line.input == "-" ? std::cin : file;
    StoreTransaction transaction(store_path(line.store_path, config));
    const ImportReport report = import_entry_stream(
        transaction.store(), input,
        ImportOptions{*source, now_seconds(), line.is_forced, entry_signature_key(config)});
    if (report.is_all_skipped()) {
        print_import_report(report, "imported", line.is_json);
        throw Error("no valid entry in the input; the store is unchanged", exit_status::failure);
    }
    transaction.commit();
    print_import_report(report, "imported", line.is_json);
    return exit_status::ok;
}

}  // namespace psi::servers
