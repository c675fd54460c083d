// The Psiphon API over SSH as psi-connect speaks it (docs/protocol.md §4-5): the password
// payload, the psiphon-handshake and psiphon-connected requests (JSON objects whose values are
// all strings), and what their replies carry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"

namespace psi::connect {

struct ClientIdentity {
    std::string propagation_channel_id;
    std::string sponsor_id;
    std::string client_version = "1";
    std::string client_platform = "Linux";
    std::string egress_region;  // "" = any
};

// What psi-connect knows of one dial, sent with the handshake for the server's metrics as
// Psiphon's client sends it (psiphon/serverApi.go, getBaseAPIParameters): counts and
// durations as decimal strings, "" fields left out.
struct DialReport {
    std::string relay_protocol;
    std::string ssh_client_version;
    int dial_port = 0;
    std::int64_t dial_duration_ms = 0;           // until the TCP connection stood
    std::size_t candidate_number = 0;            // dials started before this one in its round
    std::size_t candidate_count = 0;             // candidates in the round (unique_candidate_estimate)
    std::size_t established_tunnels_count = 0;   // tunnels this run had before this one
    std::size_t server_entry_count = 0;          // entries psi-connect was given
    std::optional<std::size_t> upstream_ossh_padding;  // OSSH: the preamble's padding length
    std::string server_entry_region;
    std::string server_entry_source;     // the entry's localSource (psi-servers pick adds it)
    std::string server_entry_timestamp;  // its localTimestamp, truncated to the hour
    std::string network_type = "UNKNOWN";
};

// "2026-12-07T12:34:56Z" -> "2026-12-07T12:00:00Z"; "" for anything but an RFC 3339 UTC time.
std::string truncate_timestamp_to_hour(std::string_view timestamp);

// From PropagationChannelId, SponsorId, ClientVersion, ClientPlatform, EgressRegion; throws
// psi::Error (usage) naming a missing or malformed value (the server would disconnect).
ClientIdentity client_identity(const Config& config);

// 16 random bytes as 32 lowercase hex digits; made once per run and reused for every tunnel.
std::string make_session_id();

// {"SessionId":"<32 hex>","SshPassword":"<password>"} (SponsorId only when it is 16 hex).
std::string password_payload(std::string_view session_id, std::string_view ssh_password, std::string_view sponsor_id);

// Also carries server_secret (the entry's webServerSecret), client_session_id and session_id:
// older servers require the first two, newer ones ignore all three (docs/protocol.md §11).
// Also random padding (0-1024 spaces) and pad_response (0-1024), as Psiphon's client sends them
// against traffic-size fingerprints.
std::string handshake_request(const ClientIdentity& identity, const DialReport& dial,
                              std::string_view server_secret, std::string_view session_id);

struct HandshakeResponse {
    std::vector<std::string> homepages;
    std::vector<std::string> encoded_server_list;
    std::string client_region;
    std::string server_timestamp;
    std::string upgrade_client_version;
};

// Throws psi::Error when the reply is not a JSON object; missing fields are empty.
HandshakeResponse parse_handshake_response(std::string_view reply);

// last_connected: "None" or the connected_timestamp of the previous reply; establishment_ms:
// from the start of establishing to the tunnel.
std::string connected_request(const ClientIdentity& identity, std::string_view relay_protocol,
                              std::string_view last_connected, std::int64_t establishment_ms);
std::string parse_connected_timestamp(std::string_view reply);  // "" when absent

}  // namespace psi::connect
