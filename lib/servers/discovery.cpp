#include "servers/discovery.hpp"

#include <algorithm>
#include <set>
#include <vector>

#include "core/global_address.hpp"

namespace psi::servers {
namespace {

// When a handshake last handed the entry out, or it last connected.
std::int64_t last_sighting(const StoredEntry& entry) { return std::max(entry.last_seen, entry.last_connected); }

bool is_discovered(const StoredEntry& entry) { return entry.source == Source::discovery; }

// The addresses of the discovered entries beyond max_discovered_stored, those seen longest ago.
std::set<std::string> oldest_beyond_cap(const Store& store) {
    std::vector<const StoredEntry*> discovered;
    for (const StoredEntry& entry : store.entries())
        if (is_discovered(entry)) discovered.push_back(&entry);
    if (discovered.size() <= max_discovered_stored) return {};
    std::stable_sort(discovered.begin(), discovered.end(), [](const StoredEntry* a, const StoredEntry* b) {
        return last_sighting(*a) < last_sighting(*b);
    });
    std::set<std::string> addresses;
    for (std::size_t i = 0; i < discovered.size() - max_discovered_stored; ++i)
        addresses.insert(discovered[i]->ip_address);
    return addresses;
}

}  // namespace

std::optional<std::string> discovered_refusal(const ServerEntry& entry, std::size_t taken) {
    if (!is_global_unicast(entry.ip_address())) return "non-global address";
    if (taken >= max_discovered_per_import)
        return "beyond " + std::to_string(max_discovered_per_import) + " discovered in one import";
    return std::nullopt;
}

std::size_t prune_discovered(Store& store, std::int64_t now) {
    std::size_t removed = store.remove_if([&](const StoredEntry& entry) {
        return is_discovered(entry) &&
               (!is_global_unicast(entry.ip_address) || now - last_sighting(entry) > discovered_lifetime_seconds);
    });
    const std::set<std::string> evicted = oldest_beyond_cap(store);
    if (!evicted.empty())
        removed += store.remove_if([&](const StoredEntry& entry) { return evicted.count(entry.ip_address) > 0; });
    return removed;
}

}  // namespace psi::servers
