// Which servers to try, in which order (docs/protocol.md §8): only entries that speak the API over
// SSH and a wanted protocol, in the wanted region; ranked by what tunnels through them did
// (server_outcome.hpp): those that connected first, the most recent first, then those never
// tried in a shuffled order, then those that failed recently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "servers/store.hpp"

namespace psi::servers {

// The protocols psi-connect speaks, in its order of preference (connect/protocols.hpp).
const std::vector<std::string>& default_protocols();

struct Selection {
    std::string region;                  // "" = any (EgressRegion)
    std::vector<std::string> protocols;  // empty = default_protocols() (LimitTunnelProtocols)
    std::size_t count = 0;               // 0 = all
    std::optional<std::uint64_t> seed;   // fixed shuffle, for tests
};

// A failure since the server last connected counts fully for failure_grace_seconds, then its
// weight halves every failure_half_life_seconds; below forgotten_failure_weight, 30 hours after
// it, it no longer counts: a server blocked yesterday is tried again tomorrow as if untried.
inline constexpr std::int64_t failure_grace_seconds = 6 * 3600;
inline constexpr std::int64_t failure_half_life_seconds = 12 * 3600;
inline constexpr double forgotten_failure_weight = 0.25;

// The weight at `now` of the entry's latest failure: 1 while recent, 0 without failures since
// it last connected.
double failure_weight(const StoredEntry& entry, std::int64_t now);

// The entries that pass the filters, in the store's order.
std::vector<const StoredEntry*> matching_servers(const Store& store, const Selection& selection);

// Those ranked for a tunnel at `now`, cut to selection.count. Servers that connected and have
// not failed since (or whose failure no longer counts) come first, the most recent connection
// first; then those never tried, shuffled; then those whose failure still counts, the smallest
// weight × failures first, then the oldest failure. Given a seed, the order depends on nothing
// but the store and `now`.
std::vector<const StoredEntry*> select_servers(const Store& store, const Selection& selection, std::int64_t now);

}  // namespace psi::servers
