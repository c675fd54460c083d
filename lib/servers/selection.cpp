#include "servers/selection.hpp"

#include <algorithm>
#include <random>

#include "connect/protocols.hpp"

namespace psi::servers {
namespace {

bool speaks_any(const StoredEntry& entry, const std::vector<std::string>& protocols) {
    return std::any_of(protocols.begin(), protocols.end(), [&](const std::string& protocol) {
        return std::find(entry.protocols.begin(), entry.protocols.end(), protocol) != entry.protocols.end();
    });
}

}  // namespace

const std::vector<std::string>& default_protocols() {
    static const std::vector<std::string> protocols = connect::spoken_protocol_names();
    return protocols;
}

std::vector<const StoredEntry*> select_servers(const Store& store, const Selection& selection) {
    const auto& protocols = selection.protocols.empty() ? default_protocols() : selection.protocols;
    std::vector<const StoredEntry*> candidates;
    for (const StoredEntry& entry : store.entries()) {
        if (!entry.has_api_requests || !speaks_any(entry, protocols)) continue;
        if (!selection.region.empty() && entry.region != selection.region) continue;
        candidates.push_back(&entry);
    }

    std::mt19937_64 random(selection.seed ? *selection.seed : std::random_device{}());
    std::shuffle(candidates.begin(), candidates.end(), random);
    // The affinity server (the last one that connected) goes first.
    auto affinity = std::max_element(candidates.begin(), candidates.end(), [](const auto* a, const auto* b) {
        return a->last_connected < b->last_connected;
    });
    if (affinity != candidates.end() && (*affinity)->last_connected > 0) std::iter_swap(candidates.begin(), affinity);

    if (selection.count > 0 && candidates.size() > selection.count) candidates.resize(selection.count);
    return candidates;
}

}  // namespace psi::servers
