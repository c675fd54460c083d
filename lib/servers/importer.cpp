#include "servers/importer.hpp"

namespace psi::servers {

std::size_t ImportReport::skipped_count() const {
    std::size_t count = 0;
    for (const auto& [reason, lines] : skipped) count += lines;
    return count;
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
