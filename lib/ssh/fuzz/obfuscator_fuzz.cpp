// libFuzzer target for ClientObfuscator::inbound (docs/protocol.md §3.3), the part of OSSH that reads
// what the server sends. Input: byte 0 is the mode, bytes 1-4 are chunk sizes (used in turn), the
// rest is the server's stream. Mode bit 0: the stream is plaintext, encrypted here with the server's
// keystream so that mutations reach the line and packet parsing directly (otherwise it goes in as it
// is). Mode bits 1-7: how many times the stream is repeated (x16), so that short inputs reach the
// 1024-byte line and 9216-byte padding limits.
// Nothing may crash; the output may never be longer than the input; once the stream is raw, bytes
// must come out unchanged; and the stream in chunks must give the same bytes (or fail the same
// way) as the stream in one call.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "ssh/obfuscator.hpp"

namespace {

const std::string keyword = "fuzz keyword";
const psi::ssh::ObfuscationSeed seed = {7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0};
constexpr std::size_t max_stream_size = 64 * 1024;
const psi::ssh::Rc4Key server_key = psi::ssh::derive_obfuscation_key(seed, keyword, "server_to_client");

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "obfuscator_fuzz: %s\n", what);
    std::abort();
}

// The output, or nothing if the stream was refused.
std::optional<std::string> inbound_in_chunks(std::string_view stream, const std::vector<std::size_t>& sizes) {
    psi::ssh::ClientObfuscator obfuscator(keyword, seed);
    std::string out;
    std::size_t done = 0;
    try {
        for (std::size_t i = 0; done < stream.size(); ++i) {
            const std::string_view chunk = stream.substr(done, sizes[i % sizes.size()]);
            const bool was_raw = obfuscator.is_inbound_raw();
            const std::string piece = obfuscator.inbound(chunk);
            if (was_raw && piece != chunk) fail("bytes past the server's NEWKEYS were changed");
            out += piece;
            done += chunk.size();
            if (out.size() > done) fail("more bytes came out than went in");
        }
    } catch (const psi::Error&) {
        return std::nullopt;  // a stream that cannot be OSSH: refusing it is the right answer
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 5) return 0;
    const bool is_plain = data[0] & 1;
    std::vector<std::size_t> sizes(data + 1, data + 5);
    if (std::all_of(sizes.begin(), sizes.end(), [](std::size_t chunk) { return chunk == 0; })) sizes = {1};

    const std::string_view body(reinterpret_cast<const char*>(data) + 5, size - 5);
    const std::size_t repeats = std::clamp<std::size_t>(max_stream_size / std::max<std::size_t>(body.size(), 1), 1,
                                                        1 + (data[0] >> 1) * 16);
    std::string stream;
    for (std::size_t i = 0; i < repeats; ++i) stream += body;
    if (is_plain) {
        psi::ssh::Rc4Stream server_to_client(server_key);
        server_to_client.apply(reinterpret_cast<std::uint8_t*>(stream.data()), stream.size());
    }

    const auto chunked = inbound_in_chunks(stream, sizes);
    const auto whole = inbound_in_chunks(stream, {stream.size() + 1});
    if (chunked != whole) fail("the stream in chunks and the stream in one call differ");
    return 0;
}
