// psi-servers record: outcome lines (server_outcome.hpp) into the store's memory.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/output.hpp"
#include "core/unique_fd.hpp"
#include "servers/command_output.hpp"
#include "servers/commands.hpp"
#include "servers/server_outcome.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {
namespace {

void print_outcome_report(const OutcomeReport& report, bool is_json) {
    if (is_json) {
        json::Value document = json::Object{};
        document.set("connected", static_cast<std::uint64_t>(report.connected));
        document.set("failed", static_cast<std::uint64_t>(report.failed));
        document.set("skipped", skipped_json(report.skipped));
        document.set("refused", skipped_json(report.refused));
        print_json(document);
        return;
    }
    std::printf("recorded %zu outcome%s: %zu connected, %zu failed\n", report.connected + report.failed,
                report.connected + report.failed == 1 ? "" : "s", report.connected, report.failed);
    print_skipped("skipped", report.skipped, "bad line", "bad lines");
    print_skipped("refused", report.refused, "outcome", "outcomes");
}

// Read whole before the store's directory is entered: as root, it may be a file only root reads.
std::string read_input(const std::string& input) {
    if (input == "-") return read_all(STDIN_FILENO, "the standard input", max_outcome_input_bytes);
    const UniqueFd file(::open(input.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file.is_open()) throw_system_error("cannot read " + input, errno);
    return read_all(file.get(), input, max_outcome_input_bytes);
}

}  // namespace

int record_command(const CommandLine& line, const Config& config) {
    const std::string text = read_input(line.input);
    StoreTransaction transaction(store_path(line.store_path, config));
    const OutcomeReport report = record_outcome_lines(transaction.store(), text, now_seconds());
    if (report.is_all_skipped()) {
        print_outcome_report(report, line.is_json);
        throw Error("no valid outcome in the input; the store is unchanged", exit_status::failure);
    }
    if (report.connected + report.failed > 0) transaction.commit();
    print_outcome_report(report, line.is_json);
    return exit_status::ok;
}

}  // namespace psi::servers
