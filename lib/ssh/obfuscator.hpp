// Obfuscated SSH (docs/protocol.md §3): the client's preamble and the RC4 stream transform that
// wraps the SSH byte stream until each side's SSH_MSG_NEWKEYS, after which bytes pass raw.
// Pure byte-in/byte-out state machines, so the socket pump (and its tests) stay simple.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace psi::ssh {

inline constexpr std::size_t obfuscation_seed_size = 16;
inline constexpr std::size_t obfuscation_max_padding = 8192;
inline constexpr std::uint32_t obfuscation_magic = 0x0BF5CA7E;

using ObfuscationSeed = std::array<std::uint8_t, obfuscation_seed_size>;
using Rc4Key = std::array<std::uint8_t, 16>;

// deriveKey: d = SHA1(seed || keyword || iv), then d = SHA1(d) 6000 times; key = d[0:16].
Rc4Key derive_obfuscation_key(const ObfuscationSeed& seed, std::string_view keyword, std::string_view iv);

// RC4 with OpenSSL (the legacy provider), one keystream, never re-keyed.
class Rc4Stream {
public:
    explicit Rc4Stream(const Rc4Key& key);
    ~Rc4Stream();
    Rc4Stream(const Rc4Stream&) = delete;
    Rc4Stream& operator=(const Rc4Stream&) = delete;
    void apply(std::uint8_t* bytes, std::size_t size);  // in place

private:
    struct State;
    std::unique_ptr<State> state_;
};

// The client side of one OSSH connection. Use a fresh random seed per connection.
class ClientObfuscator {
public:
    ClientObfuscator(std::string_view keyword, const ObfuscationSeed& seed);

    // seed || c2s(u32 magic || u32 padding length || padding); `padding` is 0..8192 bytes.
    std::string preamble(std::string_view padding);

    // Bytes libssh wrote, on their way to the server: encrypted up to and including the
    // client's NEWKEYS packet (found by parsing the packets as they pass), raw after it.
    // May be called with any split of the stream.
    std::string outbound(std::string_view bytes);

    // Bytes from the server, on their way to libssh: decrypted up to and including the
    // server's NEWKEYS packet; the server's padding lines before its "SSH-" line removed;
    // raw after NEWKEYS. Throws psi::Error on a stream that cannot be OSSH (a line longer
    // than 1024 bytes before the version line, more than 8192+1024 bytes of padding, a packet
    // length over 256 KiB before NEWKEYS).
    std::string inbound(std::string_view bytes);

    bool is_outbound_raw() const;  // past the client's NEWKEYS
    bool is_inbound_raw() const;   // past the server's NEWKEYS
    ~ClientObfuscator();

private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace psi::ssh
