#include "servers/server_entry.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <iterator>
#include <memory>
#include <span>

#include "core/byte_reader.hpp"
#include "core/crypto.hpp"
#include "core/encoding.hpp"
#include "core/error.hpp"

namespace psi::servers {

namespace {

// An entry that cannot be used. `reason` holds no data from the line: it keys
// DecodedList::skipped, so that a list of a million bad lines gives a few counts.
class EntryError : public Error {
public:
    explicit EntryError(const std::string& reason, const std::string& detail = "")
        : Error(detail.empty() ? reason : reason + ": " + detail), reason_(reason) {}
    const std::string& reason() const { return reason_; }

private:
    std::string reason_;
};

[[noreturn]] void reject(const std::string& reason) { throw EntryError(reason); }

constexpr std::size_t max_line_length = 64 * 1024;  // bufio.Scanner's limit in tunnel-core
constexpr std::string_view inproxy_prefix = "INPROXY-WEBRTC-";
constexpr std::size_t signature_key_id_size = 8;
constexpr std::size_t ed25519_key_size = 32;
constexpr std::size_t ed25519_signature_size = 64;

// A number written as a whole number ("22", not "22.0" or "2.2e1"), as Go's int fields want.
std::optional<std::int64_t> whole_number(const json::Value& value) {
    if (!value.is_number()) return std::nullopt;
    const std::string text = value.dump();
    std::int64_t number = 0;
    auto result = std::from_chars(text.data(), text.data() + text.size(), number);
    if (result.ec != std::errc() || result.ptr != text.data() + text.size()) return std::nullopt;
    return number;
}

std::optional<int> port_number(const json::Value& value) {
    auto number = whole_number(value);
    if (!number || *number < 0 || *number > 65535) return std::nullopt;
    return static_cast<int>(*number);
}

// webServerPort is a string: "" or decimal digits.
bool is_port_string(const std::string& text) {
    if (text.empty()) return true;
    if (text.size() > 5 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
    return std::stoi(text) <= 65535;
}

std::string string_field(const json::Value& fields, std::string_view name) {
    const json::Value* value = fields.find(name);
    return value && value->is_string() ? value->as_string() : std::string();
}

// A field that is there and not null: Go decodes null into the zero value, as if absent.
const json::Value* present(const json::Value& fields, std::string_view name) {
    const json::Value* value = fields.find(name);
    return value && !value->is_null() ? value : nullptr;
}

bool is_ip_address(const std::string& text) {
    if (text.find('\0') != std::string::npos) return false;  // inet_pton would stop there
    in6_addr address{};
    return inet_pton(AF_INET, text.c_str(), &address) == 1 || inet_pton(AF_INET6, text.c_str(), &address) == 1;
}

// The SSH wire format (RFC 4251 §5) of a public key: strings with a 32-bit length.
std::string_view read_ssh_string(ByteReader& reader) { return reader.take_text(reader.u32()); }

// A positive mpint: not empty, high bit of the first byte clear.
bool read_positive_mpint(ByteReader& reader) {
    ByteReader number(read_ssh_string(reader));
    return !reader.is_short() && !number.at_end() && number.u8() < 0x80;
}

bool is_ssh_public_key(std::string_view blob) {
    ByteReader reader(blob);
    const std::string_view type = read_ssh_string(reader);
    if (reader.is_short()) return false;
    if (type == "ssh-rsa") {
        if (!read_positive_mpint(reader) || !read_positive_mpint(reader)) return false;  // e, n
    } else if (type == "ssh-ed25519") {
        const std::string_view key = read_ssh_string(reader);
        if (reader.is_short() || key.size() != ed25519_key_size) return false;
    } else if (type == "ecdsa-sha2-nistp256" || type == "ecdsa-sha2-nistp384" || type == "ecdsa-sha2-nistp521") {
        const std::string_view curve = read_ssh_string(reader);
        const std::string_view point = read_ssh_string(reader);
        if (reader.is_short() || curve != type.substr(type.rfind('-') + 1) || point.empty()) return false;
    } else if (type == "ssh-dss") {
        for (int i = 0; i < 4; ++i)  // p, q, g, y
            if (!read_positive_mpint(reader)) return false;
    } else {
        return false;
    }
    return reader.at_end();
}

// Ports that have a name in docs/protocol.md §1.2; other "*Port" fields are checked the same way
// but reported without their name, which comes from the line.
constexpr std::string_view known_port_fields[] = {
    "sshPort",          "sshObfuscatedPort", "sshObfuscatedQUICPort", "sshObfuscatedTapdancePort",
    "sshObfuscatedConjurePort", "sshShadowsocksPort", "tlsOSSHPort",  "meekServerPort",
    "inproxySSHPort",   "inproxyOSSHPort",   "inproxyQUICPort",       "inproxyMeekPort",
    "inproxyTlsOSSHPort", "inproxyShadowsocksPort",
};

void validate_ports(const json::Object& members) {
    for (const auto& [name, value] : members) {
        if (!name.ends_with("Port") || value.is_null()) continue;
        if (name == "webServerPort") {
            if (!value.is_string() || !is_port_string(value.as_string())) reject("webServerPort is not a port number");
            continue;
        }
        if (port_number(value)) continue;
        bool is_known = std::ranges::find(known_port_fields, name) != std::end(known_port_fields);
        reject(is_known ? name + " is not a port number" : "a *Port field is not a port number");
    }
}

// Where a tunnel protocol dials (GetDialPortNumber): a port field, a second field used when
// the first is 0 or absent, or a fixed port for fronted meek.
struct DialRule {
    std::string_view protocol;
    std::string_view field;
    std::string_view fallback_field = {};
    int fixed_port = 0;
};

constexpr DialRule direct_dial_rules[] = {
    {"SSH", "sshPort"},
    {"OSSH", "sshObfuscatedPort"},
    {"TLS-OSSH", "tlsOSSHPort", "meekServerPort"},
    {"SHADOWSOCKS-OSSH", "sshShadowsocksPort"},
    {"QUIC-OSSH", "sshObfuscatedQUICPort"},
    {"TAPDANCE-OSSH", "sshObfuscatedTapdancePort"},
    {"CONJURE-OSSH", "sshObfuscatedConjurePort"},
    {"UNFRONTED-MEEK-OSSH", "meekServerPort"},
    {"UNFRONTED-MEEK-HTTPS-OSSH", "meekServerPort"},
    {"UNFRONTED-MEEK-SESSION-TICKET-OSSH", "meekServerPort"},
    {"FRONTED-MEEK-OSSH", {}, {}, 443},
    {"FRONTED-MEEK-QUIC-OSSH", {}, {}, 443},
    {"FRONTED-MEEK-HTTP-OSSH", {}, {}, 80},
};

// In-proxy second hops listen on ports of their own; keyed by the protocol after the prefix.
constexpr DialRule inproxy_dial_rules[] = {
    {"SSH", "inproxySSHPort"},
    {"OSSH", "inproxyOSSHPort"},
    {"TLS-OSSH", "inproxyTlsOSSHPort", "inproxyMeekPort"},
    {"SHADOWSOCKS-OSSH", "inproxyShadowsocksPort"},
    {"QUIC-OSSH", "inproxyQUICPort"},
    {"UNFRONTED-MEEK-OSSH", "inproxyMeekPort"},
    {"UNFRONTED-MEEK-HTTPS-OSSH", "inproxyMeekPort"},
    {"UNFRONTED-MEEK-SESSION-TICKET-OSSH", "inproxyMeekPort"},
    {"FRONTED-MEEK-OSSH", {}, {}, 443},
    {"FRONTED-MEEK-QUIC-OSSH", {}, {}, 443},
    {"FRONTED-MEEK-HTTP-OSSH", {}, {}, 80},
};

// GetCapability: "-OSSH" dropped, except for in-proxy protocols, which keep their full name.
std::string capability_of(std::string_view protocol) {
    if (protocol.starts_with(inproxy_prefix) || !protocol.ends_with("-OSSH")) return std::string(protocol);
    return std::string(protocol.substr(0, protocol.size() - 5));
}

void erase_all(std::string& text, std::string_view part) {
    for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at)) text.erase(at, part.size());
}

bool verify_ed25519(const std::string& public_key, std::string_view message, std::string_view signature) {
    crypto::Pkey key(EVP_PKEY_new_raw_public_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()), public_key.size()));
    if (!key) throw Error("ServerEntrySignaturePublicKey is not an Ed25519 public key", exit_status::usage);
    crypto::MdContext context(EVP_MD_CTX_new());
    if (!context || EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, key.get()) != 1)
        throw Error("cannot set up Ed25519 verification");
    bool is_valid = EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                                     signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size()) == 1;
    ERR_clear_error();  // a failed verification leaves an entry in OpenSSL's error queue
    return is_valid;
}

}  // namespace

std::string ServerEntry::string_value(std::string_view name) const { return string_field(fields, name); }

std::string ServerEntry::ip_address() const { return string_field(fields, "ipAddress"); }

std::string ServerEntry::region() const { return string_field(fields, "region"); }

std::int64_t ServerEntry::configuration_version() const {
    const json::Value* value = fields.find("configurationVersion");
    return value ? whole_number(*value).value_or(0) : 0;
}

std::vector<std::string> ServerEntry::capabilities() const {
    std::vector<std::string> list;
    const json::Value* value = fields.find("capabilities");
    if (!value || !value->is_array()) return list;
    for (const json::Value& capability : value->as_array())
        if (capability.is_string()) list.push_back(capability.as_string());
    return list;
}

// hasCapability in tunnel-core: PASSTHROUGH markers removed, "QUICv1" counts as "QUIC", and
// the passthrough-v2 HTTPS and session-ticket meek listeners also serve TLS-OSSH.
bool ServerEntry::has_capability(std::string_view capability) const {
    for (std::string offered : capabilities()) {
        if (capability == "TLS" && (offered == "UNFRONTED-MEEK-HTTPS-PASSTHROUGH-v2" ||
                                    offered == "UNFRONTED-MEEK-SESSION-TICKET-PASSTHROUGH-v2"))
            return true;
        erase_all(offered, "-PASSTHROUGH-v2");
        erase_all(offered, "-PASSTHROUGH");
        if (offered == "QUICv1") offered = "QUIC";
        if (offered == capability) return true;
    }
    return false;
}

std::optional<int> ServerEntry::dial_port(std::string_view protocol) const {
    auto port_field = [&](std::string_view name) -> std::optional<int> {
        if (name.empty()) return std::nullopt;
        const json::Value* value = fields.find(name);
        auto port = value ? port_number(*value) : std::nullopt;
        if (!port || *port == 0) return std::nullopt;
        return port;
    };
    std::span<const DialRule> rules = direct_dial_rules;
    if (protocol.starts_with(inproxy_prefix)) {
        protocol.remove_prefix(inproxy_prefix.size());
        rules = inproxy_dial_rules;
    }
    for (const DialRule& rule : rules) {
        if (rule.protocol != protocol) continue;
        if (rule.fixed_port != 0) return rule.fixed_port;
        if (auto port = port_field(rule.field)) return port;
        return port_field(rule.fallback_field);
    }
    return std::nullopt;
}

std::vector<std::string> ServerEntry::protocols(const std::vector<std::string>& wanted) const {
    std::vector<std::string> usable;
    for (const std::string& protocol : wanted)
        if (has_capability(capability_of(protocol)) && dial_port(protocol)) usable.push_back(protocol);
    return usable;
}

void validate_entry(const ServerEntry& entry) {
    const json::Value& fields = entry.fields;
    if (!fields.is_object()) reject("JSON is not an object");

    if (!is_ip_address(entry.ip_address())) reject("ipAddress is not an IP address");

    validate_ports(fields.as_object());

    if (const json::Value* key = present(fields, "sshHostKey")) {
        if (!key->is_string()) reject("sshHostKey is not a valid SSH public key");
        if (!key->as_string().empty()) {
            auto blob = encoding::base64_decode(key->as_string());
            if (!blob || !is_ssh_public_key(*blob)) reject("sshHostKey is not a valid SSH public key");
        }
    }

    if (const json::Value* key = present(fields, "sshObfuscatedKey")) {
        bool is_valid = key->is_string() && key->as_string().size() <= 128 &&
                        std::all_of(key->as_string().begin(), key->as_string().end(),
                                    [](char c) { return c >= 0x20 && c <= 0x7E; });
        if (!is_valid) reject("sshObfuscatedKey is not 1 to 128 printable ASCII characters");
    }

    if (const json::Value* capabilities = present(fields, "capabilities")) {
        bool is_valid = capabilities->is_array() &&
                        std::all_of(capabilities->as_array().begin(), capabilities->as_array().end(),
                                    [](const json::Value& capability) { return capability.is_string(); });
        if (!is_valid) reject("capabilities is not an array of strings");
    }

    if (const json::Value* region = present(fields, "region")) {
        auto is_upper = [](char c) { return c >= 'A' && c <= 'Z'; };
        bool is_valid = region->is_string() && (region->as_string().empty() ||
                                                (region->as_string().size() == 2 && is_upper(region->as_string()[0]) &&
                                                 is_upper(region->as_string()[1])));
        if (!is_valid) reject("region is not two uppercase letters");
    }

    if (const json::Value* version = present(fields, "configurationVersion")) {
        auto number = whole_number(*version);
        if (!number || *number < 0) reject("configurationVersion is not a whole number >= 0");
    }
}

ServerEntry decode_entry_line(std::string_view line) {
    const auto text = encoding::hex_decode(line);
    if (!text) reject("not hex");

    // "<ip> <webServerPort> <webServerSecret> <webServerCertificate> <JSON>": the legacy
    // prefix is skipped, and the JSON, the fifth part, may itself hold spaces.
    ByteReader parts(*text);
    for (int part = 0; part < 4; ++part) parts.take_until(" ");
    if (parts.is_short()) reject("no JSON part");

    ServerEntry entry;
    try {
        entry.fields = json::parse(parts.rest_text(), "the JSON part");
    } catch (const Error& error) {
        throw EntryError("invalid JSON", error.what());
    }
    validate_entry(entry);
    return entry;
}

std::string encode_entry_line(const ServerEntry& entry) {
    std::array<std::string, 4> prefix = {
        entry.ip_address(),
        string_field(entry.fields, "webServerPort"),
        string_field(entry.fields, "webServerSecret"),
        string_field(entry.fields, "webServerCertificate"),
    };
    // Placeholders also when a prefix value holds a space: it would shift the JSON part.
    bool has_space = std::any_of(prefix.begin(), prefix.end(),
                                 [](const std::string& part) { return part.find(' ') != std::string::npos; });
    if (prefix[3].empty() || has_space) prefix = {"0", "0", "0", "0"};
    std::string text;
    for (const std::string& part : prefix) text += part + ' ';
    text += entry.fields.dump();
    return encoding::hex_encode(text);
}

std::size_t DecodedList::skipped_count() const {
    std::size_t count = 0;
    for (const auto& [reason, lines] : skipped) count += lines;
    return count;
}

std::map<std::string, std::size_t> for_each_entry_line(std::string_view text,
                                                       const std::function<void(ServerEntry&&)>& take) {
    std::map<std::string, std::size_t> skipped;
    ByteReader lines(text);
    while (!lines.at_end()) {
        std::string_view line = lines.take_until_or_rest("\n");
        if (line.ends_with('\r')) line.remove_suffix(1);
        if (line.empty()) continue;
        if (line.size() > max_line_length) {
            ++skipped["line longer than 64 KiB"];
            continue;
        }
        ServerEntry entry;
        try {
            entry = decode_entry_line(line);
        } catch (const EntryError& error) {
            ++skipped[error.reason()];
            continue;
        }
        take(std::move(entry));
    }
    return skipped;
}

DecodedList decode_entry_list(std::string_view text) {
    DecodedList list;
    list.skipped = for_each_entry_line(text, [&](ServerEntry&& entry) { list.entries.push_back(std::move(entry)); });
    return list;
}

SignatureCheck check_signature(const ServerEntry& entry, const std::string& public_key_base64) {
    const auto public_key = encoding::base64_decode(public_key_base64);
    if (!public_key || public_key->size() != ed25519_key_size)
        throw Error("ServerEntrySignaturePublicKey is not the base64 of a 32-byte Ed25519 key", exit_status::usage);

    const json::Value* field = entry.fields.find("signature");
    if (!field || !field->is_string() || field->as_string().empty()) return SignatureCheck::unsigned_entry;

    // base64(SHA256(public key)[0:8] || Ed25519 signature)
    const auto decoded = encoding::base64_decode(field->as_string());
    if (!decoded || decoded->size() != signature_key_id_size + ed25519_signature_size) return SignatureCheck::invalid;
    ByteReader signature_field(*decoded);
    const std::string_view key_id = signature_field.take_text(signature_key_id_size);
    const std::string_view signature = signature_field.take_rest_text();
    if (key_id != std::string_view(crypto::sha256(*public_key)).substr(0, signature_key_id_size))
        return SignatureCheck::invalid;

    // RemoveUnsignedFields: client-local fields, and a tag the client derived itself.
    json::Value signed_fields = entry.fields;
    const json::Value* is_local_derived_tag = signed_fields.find("isLocalDerivedTag");
    if (is_local_derived_tag && is_local_derived_tag->is_boolean() && is_local_derived_tag->as_boolean())
        signed_fields.erase("tag");
    for (const char* name : {"signature", "localSource", "localTimestamp", "isLocalDerivedTag"}) signed_fields.erase(name);

    std::string message;
    try {
        message = json::canonical_go(signed_fields);
    } catch (const Error&) {
        return SignatureCheck::invalid;  // a number Go could not have decoded: nothing was signed
    }
    return verify_ed25519(*public_key, message, signature) ? SignatureCheck::valid : SignatureCheck::invalid;
}

}  // namespace psi::servers
