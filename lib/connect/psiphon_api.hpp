// The Psiphon API over SSH as psi-connect speaks it (PROTOCOL.md §4-5): the password
// payload, the psiphon-handshake and psiphon-connected requests (JSON objects whose values are
// all strings), and what their replies carry.
#pragma once

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

// From PropagationChannelId, SponsorId, ClientVersion, ClientPlatform, EgressRegion; throws
// psi::Error (usage) naming a missing or malformed value (the server would disconnect).
ClientIdentity client_identity(const Config& config);

// 16 random bytes as 32 lowercase hex digits; made once per run and reused for every tunnel.
std::string make_session_id();

// {"SessionId":"<32 hex>","SshPassword":"<password>"} (SponsorId only when it is 16 hex).
std::string password_payload(std::string_view session_id, std::string_view ssh_password, std::string_view sponsor_id);

// Also carries server_secret (the entry's webServerSecret), client_session_id and session_id:
// older servers require the first two, newer ones ignore all three (PROTOCOL.md §11).
std::string handshake_request(const ClientIdentity& identity, std::string_view relay_protocol,
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

// last_connected: "None" or the connected_timestamp of the previous reply.
std::string connected_request(const ClientIdentity& identity, std::string_view relay_protocol,
                              std::string_view last_connected);
std::string parse_connected_timestamp(std::string_view reply);  // "" when absent

}  // namespace psi::connect
