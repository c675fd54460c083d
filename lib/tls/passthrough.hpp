// The TLS passthrough message (docs/protocol.md §3.7): the 32-byte ClientHello random by which a
// Psiphon server tells its own clients from probers, whom it passes through to a real site. A
// 16-byte random nonce, then the first 16 bytes of HMAC-SHA256(key, nonce), where key =
// HKDF-SHA256(secret = the obfuscated key's text, salt = "passthrough-obfuscation-key" followed
// by the 20-minute period number, rounded, as 8 little-endian bytes). The server accepts the
// periods either side of its own.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace psi::tls {

using ClientRandom = std::array<unsigned char, 32>;

constexpr std::int64_t passthrough_period_seconds = 20 * 60;

ClientRandom passthrough_message(std::string_view obfuscated_key, std::int64_t unix_time);
// What the server checks: the period of unix_time and the ones either side of it.
bool is_passthrough_message(std::string_view obfuscated_key, const ClientRandom& message, std::int64_t unix_time);

}  // namespace psi::tls
