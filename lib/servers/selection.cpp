#include "servers/selection.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>
#include <utility>

#include "connect/protocols.hpp"

namespace psi::servers {
namespace {

bool speaks_any(const StoredEntry& entry, const std::vector<std::string>& protocols) {
    return std::any_of(protocols.begin(), protocols.end(), [&](const std::string& protocol) {
        return std::find(entry.protocols.begin(), entry.protocols.end(), protocol) != entry.protocols.end();
    });
}

enum Standing { connected, untried, failing };

// Where an entry goes in pick's order, smallest first: its standing, then within it the most
// recent connection, or the smallest weight × failures and then the oldest failure.
using Rank = std::tuple<Standing, double, std::int64_t>;

Rank rank_of(const StoredEntry& entry, std::int64_t now) {
    const double weight = failure_weight(entry, now);
    if (weight >= forgotten_failure_weight) return {failing, weight * entry.failures, entry.last_failed};
    if (entry.last_connected > 0) return {connected, -static_cast<double>(entry.last_connected), 0};
    return {untried, 0, 0};
}

}  // namespace

const std::vector<std::string>& default_protocols() {
    static const std::vector<std::string> protocols = connect::spoken_protocol_names();
    return protocols;
}

double failure_weight(const StoredEntry& entry, std::int64_t now) {
    if (entry.failures == 0) return 0;
    const std::int64_t age = std::max<std::int64_t>(now - entry.last_failed, 0);
    if (age <= failure_grace_seconds) return 1;
    return std::exp2(-static_cast<double>(age - failure_grace_seconds) / failure_half_life_seconds);
}

std::vector<const StoredEntry*> matching_servers(const Store& store, const Selection& selection) {
    const auto& protocols = selection.protocols.empty() ? default_protocols() : selection.protocols;
    std::vector<const StoredEntry*> matching;
    for (const StoredEntry& entry : store.entries()) {
        if (!entry.has_api_requests || !speaks_any(entry, protocols)) continue;
        if (!selection.region.empty() && entry.region != selection.region) continue;
        matching.push_back(&entry);
    }
    return matching;
}

std::vector<const StoredEntry*> select_servers(const Store& store, const Selection& selection, std::int64_t now) {
    std::vector<std::pair<Rank, const StoredEntry*>> ranked;
    for (const StoredEntry* entry : matching_servers(store, selection)) ranked.emplace_back(rank_of(*entry, now), entry);
    std::mt19937_64 random(selection.seed ? *selection.seed : std::random_device{}());
    std::shuffle(ranked.begin(), ranked.end(), random);
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

    std::vector<const StoredEntry*> candidates;
    for (const auto& [rank, entry] : ranked) candidates.push_back(entry);
    if (selection.count > 0 && candidates.size() > selection.count) candidates.resize(selection.count);
    return candidates;
}

}  // namespace psi::servers
