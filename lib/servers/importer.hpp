// Entry lines into the store, as `import` and the remote list both do it: decoded one at a
// time, bad lines counted by reason, and, when ServerEntrySignaturePublicKey is configured,
// entries whose Ed25519 signature does not verify dropped (unsigned ones are kept, as Psiphon
// does: the list they came in is what authenticates them). Entries of source DISCOVERY go
// through the rules of servers/discovery.hpp, and every import prunes the stored ones.
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <string_view>

#include "servers/store.hpp"

namespace psi::servers {

struct ImportOptions {
    Source source = Source::embedded;
    std::int64_t now = 0;
    bool is_forced = false;
    std::string signature_public_key;  // "" = do not check entry signatures
};

struct ImportReport {
    ImportCounts counts;
    std::map<std::string, std::size_t> skipped;  // reason -> lines that are no (good) entry
    std::map<std::string, std::size_t> refused;  // reason -> discovered entries the rules turned away
    std::size_t removed_discovered = 0;          // stored discovered entries pruned
    std::size_t skipped_count() const;
    std::size_t refused_count() const;
    // Lines came, and not one of them was an entry: the input is bad, not merely known.
    bool is_all_skipped() const {
        return counts.added + counts.updated + counts.unchanged == 0 && refused.empty() && skipped_count() > 0;
    }
};

ImportReport import_entry_lines(Store& store, std::string_view text, const ImportOptions& options);

// The same from a stream, a block at a time, so that a long list is never held in memory.
ImportReport import_entry_stream(Store& store, std::istream& input, const ImportOptions& options);

}  // namespace psi::servers
