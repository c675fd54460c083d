// Which servers to try, in which order (PROTOCOL.md §8): only entries that speak the API over
// SSH and a wanted protocol, in the wanted region; the affinity server first, the rest shuffled.
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

std::vector<const StoredEntry*> select_servers(const Store& store, const Selection& selection);

}  // namespace psi::servers
