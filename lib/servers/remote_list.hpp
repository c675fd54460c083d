// The remote server list (docs/protocol.md §2.3): where it is, and one fetch of it from download
// to verified entries imported into the store.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "servers/download.hpp"
#include "servers/importer.hpp"
#include "servers/store.hpp"

namespace psi::servers {

struct RemoteListSettings {
    std::string url;         // RemoteServerListUrl, or the first RemoteServerListURLs entry
    std::string public_key;  // RemoteServerListSignaturePublicKey
    std::string entry_signature_key;  // ServerEntrySignaturePublicKey, optional
    std::string proxy;
    std::string ca_file;
    // Without a proxy: the list's host resolved at these addresses alone (the uplink's own
    // resolvers, for the bootstrap fetch), not by the system's resolver.
    std::vector<std::string> resolvers;
    std::size_t max_bytes = 64u << 20;
    long timeout_seconds = 30;  // to connect, and the longest stall of the transfer
    bool show_progress = false;
    bool is_etag_ignored = false;  // --force: download even when unchanged
};

// From the config; `url` (from the command line) replaces the config's URLs, which are then
// not even parsed. Throws psi::Error (usage) on malformed RemoteServerListURLs.
RemoteListSettings remote_list_settings(const Config& config, const std::string& url = "");

// ServerEntrySignaturePublicKey, or "" when not configured.
std::string entry_signature_key(const Config& config);

struct FetchReport {
    bool is_modified = false;
    std::size_t bytes = 0;
    ImportReport imported;
};

// Downloads, verifies, decodes and imports into `store` (which the caller saves). On any
// failure it throws psi::Error and `store` is unchanged.
FetchReport fetch_remote_list(Store& store, const RemoteListSettings& settings, const std::string& part_path,
                              std::int64_t now);

}  // namespace psi::servers
