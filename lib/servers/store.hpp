// The server store (/var/lib/psiphon/servers): every known entry with where it came from and
// how it fared, plus the state of the remote list. Written whole and atomically while the
// caller holds the StoreLock; a store that cannot be read is reported and never overwritten.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/atomic_file.hpp"
#include "servers/server_entry.hpp"

namespace psi::servers {

// Now, in the unit of every time in the store: Unix seconds.
std::int64_t now_seconds();

enum class Source : std::uint8_t { embedded, remote, discovery, target };
const char* source_name(Source source);  // "EMBEDDED", ...
std::optional<Source> parse_source(const std::string& name);

// Why a tunnel through a server failed; server_outcome.hpp says what each means.
enum class FailureClass : std::uint8_t { none, unreachable, timeout, refused, host_key, auth, handshake, dropped };
const char* failure_class_name(FailureClass failure);  // "unreachable", ...; "" for none
std::optional<FailureClass> parse_failure_class(const std::string& name);  // never none

struct StoredEntry {
    std::string json;  // the entry's JSON as received (compact), unknown fields included
    std::string ip_address;
    std::string region;
    std::vector<std::string> protocols;  // tunnel protocols it can serve (capability and port)
    bool has_api_requests = false;       // the "ssh-api-requests" capability
    std::int64_t configuration_version = 0;
    Source source = Source::embedded;
    std::int64_t first_seen = 0;      // Unix seconds
    std::int64_t last_seen = 0;
    // What tunnels through it did (server_outcome.hpp records it, selection.hpp ranks by it).
    std::int64_t last_connected = 0;  // 0: never; pick puts those that connected first, the newest first
    std::uint32_t failures = 0;       // failed tunnels since it last connected
    std::int64_t last_failed = 0;     // 0: never; the latest failure, kept once it connects again
    FailureClass last_failure = FailureClass::none;  // why it failed then

    ServerEntry entry() const;  // parses `json`
    // The same with Psiphon's local fields, as its client stores them and reports them in the
    // handshake: localSource (EMBEDDED, ...) and localTimestamp (RFC 3339, when the store last
    // took it). Signatures do not cover them.
    ServerEntry entry_with_local_fields() const;
};

struct RemoteListState {
    std::string etag;
    std::int64_t last_success = 0;  // Unix seconds
};

struct ImportCounts {
    std::size_t added = 0;
    std::size_t updated = 0;    // a higher configurationVersion, or forced
    std::size_t unchanged = 0;  // same or lower version: only last_seen moves
};

// Holds `<store>.lock` for as long as it lives: one writer at a time.
class StoreLock {
public:
    StoreLock(const std::string& store_path, FileLock::Wait wait);
    bool is_held() const { return lock_.is_held(); }

private:
    FileLock lock_;
};

class Store {
public:
    // A missing file is an empty store; anything unreadable throws psi::Error and the file is
    // left as it is.
    static Store load(const std::string& path);
    void save(const std::string& path) const;

    // As given: the rules for DISCOVERY entries are the importer's (servers/importer.hpp).
    ImportCounts import(const std::vector<ServerEntry>& entries, Source source, std::int64_t now, bool force);
    // A DISCOVERY entry never replaces one of another source: a handshake does not rewrite
    // what the user or the signed list put there (only its last_seen moves).
    void import_one(const ServerEntry& entry, Source source, std::int64_t now, bool force, ImportCounts& counts);
    bool remove(const std::string& ip_address);
    std::size_t remove_if(const std::function<bool(const StoredEntry&)>& is_removed);  // how many went
    const StoredEntry* find(const std::string& ip_address) const;
    StoredEntry* find(const std::string& ip_address);
    const std::vector<StoredEntry>& entries() const { return entries_; }

    RemoteListState remote;

private:
    void index();
    std::vector<StoredEntry> entries_;
    std::unordered_map<std::string, std::size_t> by_address_;
};

// The stored entry of `ip_address`; throws psi::Error "no server ADDRESS in the store".
const StoredEntry& stored_entry_or_fail(const Store& store, const std::string& ip_address);

// Whether `protocol` is one of Psiphon's tunnel protocols (docs/protocol.md §1.3).
bool is_known_protocol(const std::string& protocol);
// All of them, whether psi speaks them or not (connect/protocols.hpp names those it does).
const std::vector<std::string>& psiphon_protocols();

StoredEntry make_stored_entry(const ServerEntry& entry, Source source, std::int64_t now);

}  // namespace psi::servers
