#include "servers/importer.hpp"

#include "servers/discovery.hpp"

namespace psi::servers {
namespace {

std::size_t total(const std::map<std::string, std::size_t>& counts) {
    std::size_t sum = 0;
    for (const auto& [reason, count] : counts) sum += count;
    return sum;
}

// One import, whose text may come a block at a time: the cap on discovered entries holds for
// the whole of it.
class Intake {
public:
    Intake(Store& store, const ImportOptions& options) : store_(store), options_(options) {}

    void take(std::string_view text) {
        const auto skipped = for_each_entry_line(text, [&](ServerEntry&& entry) { take_entry(entry); });
        for (const auto& [reason, lines] : skipped) report_.skipped[reason] += lines;
    }

    ImportReport finish() {
        report_.removed_discovered = prune_discovered(store_, options_.now);
        return report_;
    }

private:
    void take_entry(const ServerEntry& entry) {
        if (!options_.signature_public_key.empty() &&
            check_signature(entry, options_.signature_public_key) == SignatureCheck::invalid) {
            ++report_.skipped["signature does not verify"];
            return;
        }
        if (options_.source == Source::discovery) {
            if (const auto refusal = discovered_refusal(entry, discovered_taken_)) {
                ++report_.refused[*refusal];
                return;
            }
            ++discovered_taken_;
        }
        store_.import_one(entry, options_.source, options_.now, options_.is_forced, report_.counts);
    }

    Store& store_;
    const ImportOptions& options_;
    ImportReport report_;
    std::size_t discovered_taken_ = 0;
};

}  // namespace

std::size_t ImportReport::skipped_count() const { return total(skipped); }

std::size_t ImportReport::refused_count() const { return total(refused); }

ImportReport import_entry_stream(Store& store, std::istream& input, const ImportOptions& options) {
    Intake intake(store, options);
    std::string pending;
    std::string block(1 << 20, '\0');
    while (input) {
        input.read(block.data(), static_cast<std::streamsize>(block.size()));
        pending.append(block.data(), static_cast<std::size_t>(input.gcount()));
        const std::size_t end = pending.rfind('\n');
        if (end == std::string::npos) continue;  // a line longer than a block: keep reading
        intake.take(std::string_view(pending).substr(0, end + 1));
        pending.erase(0, end + 1);
    }
    intake.take(pending);
    return intake.finish();
}

ImportReport import_entry_lines(Store& store, std::string_view text, const ImportOptions& options) {
    Intake intake(store, options);
    intake.take(text);
    return intake.finish();
}

}  // namespace psi::servers
