#include "connect/psiphon_api.hpp"

#include <openssl/rand.h>

#include <regex>

#include "core/encoding.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace psi::connect {
namespace {

bool is_hex(std::string_view text) {
    return !text.empty() && text.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
}

std::size_t random_below(std::size_t bound) {
    unsigned char bytes[4];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw Error("no randomness for the API padding");
    const std::uint32_t value = (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) |
                                (std::uint32_t{bytes[2]} << 8) | bytes[3];
    return value % bound;
}

constexpr std::size_t max_api_padding = 1024;  // APIRequest{Up,Down}streamPaddingMaxBytes

// What every request carries. psi applies no tactics, so the applied tactics tag is empty.
json::Value base_parameters(const ClientIdentity& identity, std::string_view relay_protocol,
                            std::string_view network_type) {
    json::Value parameters = json::Object{};
    parameters.set("propagation_channel_id", identity.propagation_channel_id);
    parameters.set("sponsor_id", identity.sponsor_id);
    parameters.set("client_version", identity.client_version);
    parameters.set("client_platform", identity.client_platform);
    parameters.set("client_build_rev", std::string());  // Psiphon's build revision: psi has none
    parameters.set("network_type", std::string(network_type));
    parameters.set("applied_tactics_tag", std::string());
    parameters.set("relay_protocol", std::string(relay_protocol));
    parameters.set("padding", std::string(random_below(max_api_padding + 1), ' '));
    parameters.set("pad_response", std::to_string(random_below(max_api_padding + 1)));
    return parameters;
}

void set_if_any(json::Value& parameters, const char* key, const std::string& value) {
    if (!value.empty()) parameters.set(key, value);
}

json::Value parse_reply(std::string_view reply, const char* what) {
    json::Value document;
    try {
        document = json::parse(reply, what);
    } catch (const Error& error) {
        throw Error(std::string("the server's ") + what + " reply is not JSON: " + error.what());
    }
    if (!document.is_object()) throw Error(std::string("the server's ") + what + " reply is not a JSON object");
    return document;
}

}  // namespace

ClientIdentity client_identity(const Config& config) {
    ClientIdentity identity;
    const PsiphonSettings& settings = config.psiphon;
    identity.propagation_channel_id = settings.propagation_channel_id;
    identity.sponsor_id = settings.sponsor_id;
    identity.client_version = settings.client_version.value_or(identity.client_version);
    identity.client_platform = settings.client_platform.value_or(identity.client_platform);
    identity.egress_region = settings.egress_region;
    if (!is_hex(identity.propagation_channel_id))
        throw Error("PropagationChannelId must be set to hex digits (FFFFFFFFFFFFFFFF for the public client)",
                    exit_status::usage);
    if (identity.sponsor_id.size() != 16 || !is_hex(identity.sponsor_id))
        throw Error("SponsorId must be 16 hex digits (FFFFFFFFFFFFFFFF for the public client)", exit_status::usage);
    if (identity.client_version.empty() ||
        identity.client_version.find_first_not_of("0123456789") != std::string::npos)
        throw Error("ClientVersion must be a whole number", exit_status::usage);
    if (identity.client_platform.empty() || identity.client_platform.find_first_of(" \t\r\n") != std::string::npos)
        throw Error("ClientPlatform must be a word without spaces", exit_status::usage);
    return identity;
}

std::string make_session_id() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw Error("no randomness for the session id");
    return encoding::hex_encode(std::string_view(reinterpret_cast<char*>(bytes), sizeof bytes));
}

std::string password_payload(std::string_view session_id, std::string_view ssh_password, std::string_view sponsor_id) {
    json::Value payload = json::Object{};
    payload.set("SessionId", std::string(session_id));
    payload.set("SshPassword", std::string(ssh_password));
    if (sponsor_id.size() == 16 && is_hex(sponsor_id)) payload.set("SponsorId", std::string(sponsor_id));
    return payload.dump();
}

std::string truncate_timestamp_to_hour(std::string_view timestamp) {
    static const std::regex utc(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z)");
    if (timestamp.size() > 40 || !std::regex_match(timestamp.begin(), timestamp.end(), utc)) return "";
    return std::string(timestamp.substr(0, 13)) + ":00:00Z";
}

std::string handshake_request(const ClientIdentity& identity, const DialReport& dial,
                              std::string_view server_secret, std::string_view session_id) {
    json::Value parameters = base_parameters(identity, dial.relay_protocol, dial.network_type);
    set_if_any(parameters, "egress_region", identity.egress_region);
    set_if_any(parameters, "ssh_client_version", dial.ssh_client_version);
    set_if_any(parameters, "server_entry_region", dial.server_entry_region);
    set_if_any(parameters, "server_entry_source", dial.server_entry_source);
    set_if_any(parameters, "server_entry_timestamp", dial.server_entry_timestamp);
    if (dial.dial_port > 0) parameters.set("dial_port_number", std::to_string(dial.dial_port));
    parameters.set("dial_duration", std::to_string(dial.dial_duration_ms));
    parameters.set("candidate_number", std::to_string(dial.candidate_number));
    parameters.set("unique_candidate_estimate", std::to_string(dial.candidate_count));
    parameters.set("candidates_moved_to_front", std::string("0"));
    parameters.set("established_tunnels_count", std::to_string(dial.established_tunnels_count));
    parameters.set("server_entry_count", std::to_string(dial.server_entry_count));
    if (dial.upstream_ossh_padding) parameters.set("upstream_ossh_padding", std::to_string(*dial.upstream_ossh_padding));
    parameters.set("server_secret", std::string(server_secret));
    parameters.set("client_session_id", std::string(session_id));
    parameters.set("session_id", std::string(session_id));
    return parameters.dump();
}

HandshakeResponse parse_handshake_response(std::string_view reply) {
    const json::Value document = parse_reply(reply, "psiphon-handshake");
    HandshakeResponse response;
    response.homepages = document.get_strings("homepages");
    response.encoded_server_list = document.get_strings("encoded_server_list");
    response.client_region = document.get("client_region", "");
    response.server_timestamp = document.get("server_timestamp", "");
    response.upgrade_client_version = document.get("upgrade_client_version", "");
    return response;
}

std::string connected_request(const ClientIdentity& identity, std::string_view relay_protocol,
                              std::string_view last_connected, std::int64_t establishment_ms) {
    json::Value parameters = base_parameters(identity, relay_protocol, "UNKNOWN");
    parameters.set("last_connected", std::string(last_connected.empty() ? "None" : last_connected));
    parameters.set("establishment_duration", std::to_string(establishment_ms));
    return parameters.dump();
}

std::string parse_connected_timestamp(std::string_view reply) {
    return parse_reply(reply, "psiphon-connected").get("connected_timestamp", "");
}

}  // namespace psi::connect
