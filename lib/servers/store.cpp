#include "servers/store.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "core/error.hpp"

namespace psi::servers {

// `Entry` is StoredEntry to load, const StoredEntry to save.
template <class Archive, class Entry>
void archive_entry(Archive& archive, Entry& entry, std::uint32_t format) {
    archive(entry.json, entry.ip_address, entry.region, entry.protocols, entry.has_api_requests,
            entry.configuration_version, entry.source, entry.first_seen, entry.last_seen, entry.last_connected,
            entry.failures);
    if (format >= 2) archive(entry.last_failed, entry.last_failure);
}

template <class Archive>
void serialize(Archive& archive, RemoteListState& state) {
    archive(state.etag, state.last_success);
}

namespace {

constexpr std::uint32_t store_magic = 0x50534953;  // "PSIS"
// Format 2 added last_failed and last_failure; a store of format 1 is read as having none.
constexpr std::uint32_t store_format = 2;
constexpr std::uint32_t oldest_store_format = 1;

// Every tunnel protocol of docs/protocol.md §1.3; an entry's own list is computed once, at import.
const std::vector<std::string> known_protocols = {
    "SSH", "OSSH", "TLS-OSSH", "SHADOWSOCKS-OSSH", "UNFRONTED-MEEK-OSSH", "UNFRONTED-MEEK-HTTPS-OSSH",
    "UNFRONTED-MEEK-SESSION-TICKET-OSSH", "FRONTED-MEEK-OSSH", "FRONTED-MEEK-HTTP-OSSH", "QUIC-OSSH",
    "FRONTED-MEEK-QUIC-OSSH", "TAPDANCE-OSSH", "CONJURE-OSSH"};

constexpr std::array source_names = {"EMBEDDED", "REMOTE", "DISCOVERY", "TARGET"};
constexpr std::array failure_class_names = {"", "unreachable", "timeout", "refused", "host-key", "auth", "handshake",
                                            "dropped"};
static_assert(failure_class_names.size() == static_cast<std::size_t>(FailureClass::dropped) + 1);

}  // namespace

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

const char* source_name(Source source) { return source_names[static_cast<std::size_t>(source)]; }

std::optional<Source> parse_source(const std::string& name) {
    for (std::size_t i = 0; i < source_names.size(); ++i)
        if (name == source_names[i]) return static_cast<Source>(i);
    return std::nullopt;
}

const char* failure_class_name(FailureClass failure) {
    const auto index = static_cast<std::size_t>(failure);
    return index < failure_class_names.size() ? failure_class_names[index] : "?";
}

std::optional<FailureClass> parse_failure_class(const std::string& name) {
    for (std::size_t i = 1; i < failure_class_names.size(); ++i)
        if (name == failure_class_names[i]) return static_cast<FailureClass>(i);
    return std::nullopt;
}

bool is_known_protocol(const std::string& protocol) {
    return std::find(known_protocols.begin(), known_protocols.end(), protocol) != known_protocols.end();
}

const std::vector<std::string>& psiphon_protocols() { return known_protocols; }

ServerEntry StoredEntry::entry() const { return ServerEntry{json::parse(json, "stored entry")}; }

ServerEntry StoredEntry::entry_with_local_fields() const {
    ServerEntry local = entry();
    local.fields.set("localSource", std::string(source_name(source)));
    const std::time_t when = static_cast<std::time_t>(last_seen > 0 ? last_seen : first_seen);
    std::tm parts{};
    char text[32];
    if (when > 0 && ::gmtime_r(&when, &parts) && std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts))
        local.fields.set("localTimestamp", std::string(text));
    return local;
}

StoredEntry make_stored_entry(const ServerEntry& entry, Source source, std::int64_t now) {
    StoredEntry stored;
    stored.json = entry.fields.dump();
    stored.ip_address = entry.ip_address();
    stored.region = entry.region();
    stored.protocols = entry.protocols(known_protocols);
    stored.has_api_requests = entry.has_capability("ssh-api-requests");
    stored.configuration_version = entry.configuration_version();
    stored.source = source;
    stored.first_seen = now;
    stored.last_seen = now;
    return stored;
}

StoreLock::StoreLock(const std::string& store_path, FileLock::Wait wait) : lock_(store_path + ".lock", wait) {}

Store Store::load(const std::string& path) {
    Store store;
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        if (errno == ENOENT) return store;
        throw_system_error("cannot read the server store " + path, errno);
    }
    if (!S_ISREG(info.st_mode)) throw Error("the server store " + path + " is not a regular file");
    std::ifstream input(path, std::ios::binary);
    if (!input) throw_system_error("cannot read the server store " + path, errno);
    try {
        cereal::PortableBinaryInputArchive archive(input);
        std::uint32_t magic = 0, format = 0;
        archive(magic, format);
        if (magic != store_magic) throw Error("not a psi server store");
        if (format < oldest_store_format || format > store_format)
            throw Error("store format " + std::to_string(format) + " is not known");
        std::uint64_t count = 0;
        archive(store.remote, count);
        // Each entry takes more than 64 bytes: a larger count is corruption, not a big store.
        if (count > static_cast<std::uint64_t>(info.st_size) / 64) throw Error("it claims more entries than it could hold");
        store.entries_.resize(count);
        for (StoredEntry& entry : store.entries_) {
            archive_entry(archive, entry, format);
            if (static_cast<std::size_t>(entry.source) >= source_names.size()) throw Error("an entry has an unknown source");
            if (static_cast<std::size_t>(entry.last_failure) >= failure_class_names.size())
                throw Error("an entry has an unknown failure class");
        }
        if (input.peek() != std::char_traits<char>::eof()) throw Error("unexpected bytes at its end");
    } catch (const std::exception& error) {
        throw Error("the server store " + path + " cannot be read (" + error.what() +
                    "); it was left untouched: move it away to start afresh");
    }
    store.index();
    return store;
}

void Store::save(const std::string& path) const {
    replace_file(path, 0600, [&](std::ostream& output) {
        cereal::PortableBinaryOutputArchive archive(output);
        archive(store_magic, store_format, remote, static_cast<std::uint64_t>(entries_.size()));
        for (const StoredEntry& entry : entries_) archive_entry(archive, entry, store_format);
    });
}

void Store::index() {
    by_address_.clear();
    for (std::size_t i = 0; i < entries_.size(); ++i) by_address_[entries_[i].ip_address] = i;
}

ImportCounts Store::import(const std::vector<ServerEntry>& entries, Source source, std::int64_t now, bool force) {
    ImportCounts counts;
    for (const ServerEntry& entry : entries) import_one(entry, source, now, force, counts);
    return counts;
}

void Store::import_one(const ServerEntry& entry, Source source, std::int64_t now, bool force, ImportCounts& counts) {
    StoredEntry fresh = make_stored_entry(entry, source, now);
    StoredEntry* existing = find(fresh.ip_address);
    if (!existing) {
        by_address_[fresh.ip_address] = entries_.size();
        entries_.push_back(std::move(fresh));
        ++counts.added;
    } else if (source == Source::discovery && existing->source != Source::discovery) {
        existing->last_seen = now;
        ++counts.unchanged;
    } else if (force || fresh.configuration_version > existing->configuration_version) {
        fresh.first_seen = existing->first_seen;
        fresh.last_connected = existing->last_connected;
        *existing = std::move(fresh);
        ++counts.updated;
    } else {
        existing->last_seen = now;
        ++counts.unchanged;
    }
}

bool Store::remove(const std::string& ip_address) {
    auto it = by_address_.find(ip_address);
    if (it == by_address_.end()) return false;
    entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(it->second));
    index();
    return true;
}

std::size_t Store::remove_if(const std::function<bool(const StoredEntry&)>& is_removed) {
    const auto kept_end = std::remove_if(entries_.begin(), entries_.end(), is_removed);
    const auto removed = static_cast<std::size_t>(entries_.end() - kept_end);
    entries_.erase(kept_end, entries_.end());
    if (removed > 0) index();
    return removed;
}

const StoredEntry* Store::find(const std::string& ip_address) const {
    auto it = by_address_.find(ip_address);
    return it == by_address_.end() ? nullptr : &entries_[it->second];
}

StoredEntry* Store::find(const std::string& ip_address) {
    return const_cast<StoredEntry*>(static_cast<const Store*>(this)->find(ip_address));
}

const StoredEntry& stored_entry_or_fail(const Store& store, const std::string& ip_address) {
    const StoredEntry* entry = store.find(ip_address);
    if (!entry) throw Error("no server " + ip_address + " in the store");
    return *entry;
}

}  // namespace psi::servers
