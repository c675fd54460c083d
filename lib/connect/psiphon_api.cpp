#include "connect/psiphon_api.hpp"

#include <openssl/rand.h>

#include "core/encoding.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace psi::connect {
namespace {

bool is_hex(std::string_view text) {
    return !text.empty() && text.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
}

std::string config_string(const Config& config, const char* key, const std::string& fallback) {
    const json::Value* value = config.document.find(key);
    return value && value->is_string() ? value->as_string() : fallback;
}

json::Value base_parameters(const ClientIdentity& identity, std::string_view relay_protocol) {
    json::Value parameters = json::Object{};
    parameters.set("propagation_channel_id", identity.propagation_channel_id);
    parameters.set("sponsor_id", identity.sponsor_id);
    parameters.set("client_version", identity.client_version);
    parameters.set("client_platform", identity.client_platform);
    parameters.set("relay_protocol", std::string(relay_protocol));
    return parameters;
}

std::vector<std::string> string_list(const json::Value& reply, const char* key) {
    std::vector<std::string> items;
    if (const json::Value* list = reply.find(key); list && list->is_array())
        for (const json::Value& item : list->as_array())
            if (item.is_string()) items.push_back(item.as_string());
    return items;
}

std::string string_field(const json::Value& reply, const char* key) {
    const json::Value* value = reply.find(key);
    return value && value->is_string() ? value->as_string() : "";
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
    identity.propagation_channel_id = config_string(config, "PropagationChannelId", "");
    identity.sponsor_id = config_string(config, "SponsorId", "");
    identity.client_version = config_string(config, "ClientVersion", identity.client_version);
    identity.client_platform = config_string(config, "ClientPlatform", identity.client_platform);
    identity.egress_region = config_string(config, "EgressRegion", "");
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

std::string handshake_request(const ClientIdentity& identity, std::string_view relay_protocol,
                              std::string_view server_secret, std::string_view session_id) {
    json::Value parameters = base_parameters(identity, relay_protocol);
    if (!identity.egress_region.empty()) parameters.set("egress_region", identity.egress_region);
    parameters.set("server_secret", std::string(server_secret));
    parameters.set("client_session_id", std::string(session_id));
    parameters.set("session_id", std::string(session_id));
    return parameters.dump();
}

HandshakeResponse parse_handshake_response(std::string_view reply) {
    const json::Value document = parse_reply(reply, "psiphon-handshake");
    HandshakeResponse response;
    response.homepages = string_list(document, "homepages");
    response.encoded_server_list = string_list(document, "encoded_server_list");
    response.client_region = string_field(document, "client_region");
    response.server_timestamp = string_field(document, "server_timestamp");
    response.upgrade_client_version = string_field(document, "upgrade_client_version");
    return response;
}

std::string connected_request(const ClientIdentity& identity, std::string_view relay_protocol,
                              std::string_view last_connected) {
    json::Value parameters = base_parameters(identity, relay_protocol);
    parameters.set("last_connected", std::string(last_connected.empty() ? "None" : last_connected));
    return parameters.dump();
}

std::string parse_connected_timestamp(std::string_view reply) {
    return string_field(parse_reply(reply, "psiphon-connected"), "connected_timestamp");
}

}  // namespace psi::connect
