// libFuzzer target for the server entry codec (docs/protocol.md §1.1). The input is read twice: as a
// list of hex lines, and hex-encoded as one line, so that mutations reach the JSON and the
// validation directly. Nothing may crash, and every entry accepted must come back unchanged
// from encode_entry_line + decode_entry_line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/encoding.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "servers/server_entry.hpp"

namespace {

// Any 32 bytes make an Ed25519 public key for OpenSSL; this one exercises check_signature.
const std::string public_key_base64 = psi::encoding::base64_encode(std::string(32, '\x42'));

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "server_entry_fuzz: %s: %s\n", what, detail.c_str());
    std::abort();
}

void check_round_trip(const psi::servers::ServerEntry& entry) {
    const std::string line = psi::servers::encode_entry_line(entry);
    psi::servers::ServerEntry again;
    try {
        again = psi::servers::decode_entry_line(line);
    } catch (const psi::Error& error) {
        fail("an encoded entry does not decode", error.what());
    }
    if (again.fields.dump() != entry.fields.dump()) fail("the JSON changed in a round trip", entry.fields.dump());
    if (psi::servers::encode_entry_line(again) != line) fail("the line changed in a round trip", line);

    try {
        psi::json::canonical_go(entry.fields);
    } catch (const psi::Error&) {
        // a number beyond float64: canonical_go refuses it, as Go's decoder would
    }
    psi::servers::check_signature(entry, public_key_base64);
    entry.protocols({"SSH", "OSSH", "TLS-OSSH", "QUIC-OSSH", "UNFRONTED-MEEK-OSSH", "INPROXY-WEBRTC-OSSH"});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    for (const auto& entry : psi::servers::decode_entry_list(input).entries) check_round_trip(entry);
    for (const auto& entry : psi::servers::decode_entry_list(psi::encoding::hex_encode(input)).entries)
        check_round_trip(entry);
    return 0;
}
