// A Psiphon server entry (docs/protocol.md §1): the line codec, validation, and the optional
// Ed25519 signature. The JSON is kept as received, unknown fields included: they are signed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"

namespace psi::servers {

struct ServerEntry {
    json::Value fields;  // the entry's JSON object, in its original key order

    std::string string_value(std::string_view name) const;  // "" when absent or not a string
    std::string ip_address() const;             // "" when absent
    std::string region() const;                 // "" when absent
    std::int64_t configuration_version() const; // 0 when absent
    std::vector<std::string> capabilities() const;
    // docs/protocol.md §1.3: "-PASSTHROUGH-v2"/"-PASSTHROUGH" suffixes are ignored.
    bool has_capability(std::string_view capability) const;
    // The dial port of a tunnel protocol ("OSSH" -> sshObfuscatedPort, "SSH" -> sshPort), or
    // nullopt when the entry has no such port or it is 0.
    std::optional<int> dial_port(std::string_view protocol) const;
    // Tunnel protocols this entry can serve among `wanted` (capability present and port set).
    std::vector<std::string> protocols(const std::vector<std::string>& wanted) const;
};

// Decodes one line: lowercase (or uppercase) hex of "<ip> <port> <secret> <cert> <JSON>", split
// into at most 5 parts on ' ', JSON parsed, then validated. Throws psi::Error with a short
// reason ("not hex", "no JSON part", "invalid JSON: ...", "ipAddress is not an IP address", ...).
ServerEntry decode_entry_line(std::string_view line);

// The line for an entry: hex of "0 0 0 0 " + compact JSON when there is no
// webServerCertificate (or a prefix value holds a space, which would shift the JSON part),
// else of "<ip> <webServerPort> <webServerSecret> <webServerCertificate> <JSON>".
std::string encode_entry_line(const ServerEntry& entry);

// Throws psi::Error naming the field that is wrong. A field that is null, 0 or "" counts as
// absent (Go's zero values, which older entries write for unused ports and keys). Checks:
// ipAddress is an IPv4/IPv6 address; every *Port field present is an integer 1..65535
// (webServerPort: a string of one); sshHostKey, when present, is base64 of a well-formed SSH
// public key blob (string type, then the fields its type requires, nothing left over);
// sshObfuscatedKey, when present, is 1..128 printable ASCII characters; capabilities, when
// present, is an array of strings; region, when present, is "" or two uppercase letters;
// configurationVersion, when present, an integer >= 0.
void validate_entry(const ServerEntry& entry);

struct DecodedList {
    std::vector<ServerEntry> entries;
    std::map<std::string, std::size_t> skipped;  // reason -> count
    std::size_t skipped_count() const;
};

// Entries separated by '\n' ("\r\n" accepted); empty lines ignored; a line longer than
// 64 KiB or that fails to decode is skipped and counted under its reason, never fatal.
DecodedList decode_entry_list(std::string_view text);

// The same, one entry at a time, so that a long list never sits decoded in memory whole.
// Returns the skipped lines' reasons with their counts.
std::map<std::string, std::size_t> for_each_entry_line(std::string_view text,
                                                       const std::function<void(ServerEntry&&)>& take);

enum class SignatureCheck { valid, invalid, unsigned_entry };

// docs/protocol.md §1.4: `signature` = base64(SHA256(public key)[0:8] || Ed25519 signature) over the
// Go-canonical JSON of the fields without signature, localSource, localTimestamp,
// isLocalDerivedTag, and tag when isLocalDerivedTag is true. `public_key_base64` is the config's
// ServerEntrySignaturePublicKey (32 raw bytes, base64). Throws psi::Error on a malformed key.
SignatureCheck check_signature(const ServerEntry& entry, const std::string& public_key_base64);

}  // namespace psi::servers
