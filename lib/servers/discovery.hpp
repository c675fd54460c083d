// The rules for the entries a tunnel's handshake hands out (source DISCOVERY). The server that
// chooses them may be hostile: it must not steer the client to its LAN, its loopback services
// or a cloud metadata address, nor flood the store. Entries the user imports by hand and the
// signed remote list are not bound by these rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "servers/store.hpp"

namespace psi::servers {

// Psiphon's discovery hands out a few servers per handshake; ten leaves room for that, and a
// server that hands out thousands gets ten stored.
constexpr std::size_t max_discovered_per_import = 10;
// Discovered entries in the store at most; beyond it, those seen longest ago go first.
constexpr std::size_t max_discovered_stored = 200;
// A discovered entry that no handshake has handed out again (nor connected) for this long goes.
constexpr std::int64_t discovered_lifetime_seconds = 30 * 24 * 3600;

// Why an import refuses a discovered entry ("non-global address", ...), or nullopt when it takes
// it; `taken` counts the discovered entries this import has already taken.
std::optional<std::string> discovered_refusal(const ServerEntry& entry, std::size_t taken);

// Removes the stored DISCOVERY entries that the rules no longer let stay: those with a
// non-global address (stored before there were rules), those not seen for the lifetime, and
// the oldest beyond max_discovered_stored. Entries of other sources stay. Returns how many went.
std::size_t prune_discovered(Store& store, std::int64_t now);

}  // namespace psi::servers
