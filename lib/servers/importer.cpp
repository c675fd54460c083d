#include "servers/importer.hpp"

namespace psi::servers {

std::size_t ImportReport::skipped_count() const {
    std::size_t count = 0;
    for (const auto& [reason, lines] : skipped) count += lines;
    return count;
}

namespace {

void add(ImportReport& total, const ImportReport& part) {
    total.counts.added += part.counts.added;
    total.counts.updated += part.counts.updated;
    total.counts.unchanged += part.counts.unchanged;
    for (const auto& [reason, lines] : part.skipped) total.skipped[reason] += lines;
}

}  // namespace

ImportReport import_entry_stream(Store& store, std::istream& input, const ImportOptions& options) {
    ImportReport report;
    std::string pending;
    std::string block(1 << 20, '\0');
    while (input) {
        input.read(block.data(), static_cast<std::streamsize>(block.size()));
        pending.append(block.data(), static_cast<std::size_t>(input.gcount()));
        const std::size_t end = pending.rfind('\n');
        if (end == std::string::npos) continue;  // a line longer than a block: keep reading
        add(report, import_entry_lines(store, std::string_view(pending).substr(0, end + 1), options));
        pending.erase(0, end + 1);
    }
    add(report, import_entry_lines(store, pending, options));
    return report;
}

ImportReport import_entry_lines(Store& store, std::string_view text, const ImportOptions& options) {
    ImportReport report;
    std::size_t badly_signed = 0;
    report.skipped = for_each_entry_line(text, [&](ServerEntry&& entry) {
        if (!options.signature_public_key.empty() &&
            check_signature(entry, options.signature_public_key) == SignatureCheck::invalid) {
            ++badly_signed;
            return;
        }
        store.import_one(entry, options.source, options.now, options.is_forced, report.counts);
    });
    if (badly_signed > 0) report.skipped["signature does not verify"] += badly_signed;
    return report;
}

}  // namespace psi::servers
