#include "ssh/obfuscator.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <vector>

#include "core/encoding.hpp"
#include "core/error.hpp"

namespace psi::ssh {
namespace {

// docs/protocol.md §3.4.
const std::string vector_keyword = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ObfuscationSeed vector_seed = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

std::string hex(std::string_view bytes) { return encoding::hex_encode(bytes); }

std::string counting_bytes(std::size_t size) {
    std::string bytes;
    for (std::size_t i = 0; i < size; ++i) bytes += static_cast<char>(i);
    return bytes;
}

std::string hex_of_key(const Rc4Key& key) { return hex(std::string(key.begin(), key.end())); }

std::string u32(std::uint32_t value) {
    return {static_cast<char>(value >> 24), static_cast<char>(value >> 16 & 0xff), static_cast<char>(value >> 8 & 0xff),
            static_cast<char>(value & 0xff)};
}

// An SSH binary packet before NEWKEYS: no MAC, and padding as long as asked (psiphond does not
// align it to the block size).
std::string packet(std::uint8_t message, std::string_view body, std::uint8_t padding_length) {
    const auto packet_length = static_cast<std::uint32_t>(1 + 1 + body.size() + padding_length);
    return u32(packet_length) + static_cast<char>(padding_length) + static_cast<char>(message) + std::string(body) +
           std::string(padding_length, '\x5a');
}

const std::string newkeys_packet = packet(21, "", 10);

// What libssh writes: version line, KEXINIT, ECDH init, NEWKEYS; then the encrypted packets,
// which must go out raw. Bytes 21 sit where a careless parser would see NEWKEYS: as a padding
// length, inside a body, and in the raw part.
const std::string client_obfuscated_part = "SSH-2.0-libssh_0.10.6\r\n" +
                                           packet(20, counting_bytes(16) + "\x15\x15 curve25519-sha256", 21) +
                                           packet(30, std::string("\x00\x00\x00\x20", 4) + std::string(32, '\x15'), 6) +
                                           newkeys_packet;
const std::string client_raw_part = std::string("\x00\x00\x00\x0c\x0a\x15", 6) + counting_bytes(300);
const std::string client_stream = client_obfuscated_part + client_raw_part;

// What psiphond sends: padding lines, version line, KEXINIT, ECDH reply, NEWKEYS, then raw.
const std::string server_padding_lines = std::string(510, '\0') + "\r\n" + "\r\n" + std::string(97, '\0') + "\r\n";
const std::string server_version_line = "SSH-2.0-OpenSSH_8.9\r\n";
const std::string server_packets = packet(20, counting_bytes(200), 237) + packet(31, std::string(90, '\x15'), 21) +
                                   packet(21, "", 4);
const std::string server_raw_part = packet(21, "", 4) + counting_bytes(256);

// The server's half of OSSH, built only from the key derivation and RC4, so that it checks
// ClientObfuscator rather than mirrors it. The tests know where each NEWKEYS ends.
class TestServer {
public:
    explicit TestServer(std::string_view keyword = vector_keyword, const ObfuscationSeed& seed = vector_seed)
        : seed_(seed),
          client_to_server_(derive_obfuscation_key(seed, keyword, "client_to_server")),
          server_to_client_(derive_obfuscation_key(seed, keyword, "server_to_client")) {}

    // Checks the seed and the magic; returns the padding.
    std::string read_preamble(std::string preamble) {
        EXPECT_GE(preamble.size(), 24u);
        EXPECT_EQ(preamble.substr(0, 16), std::string(seed_.begin(), seed_.end()));
        std::string rest = preamble.substr(16);
        client_to_server_.apply(reinterpret_cast<std::uint8_t*>(rest.data()), rest.size());
        EXPECT_EQ(rest.substr(0, 4), u32(obfuscation_magic));
        EXPECT_EQ(rest.substr(4, 4), u32(static_cast<std::uint32_t>(rest.size() - 8)));
        return rest.substr(8);
    }

    // The first obfuscated_size bytes go through RC4, the rest stays as it is.
    std::string decrypt_from_client(std::string stream, std::size_t obfuscated_size) {
        apply(client_to_server_, stream, obfuscated_size);
        return stream;
    }
    std::string encrypt_to_client(std::string stream, std::size_t obfuscated_size) {
        apply(server_to_client_, stream, obfuscated_size);
        return stream;
    }

private:
    static void apply(Rc4Stream& rc4, std::string& stream, std::size_t size) {
        rc4.apply(reinterpret_cast<std::uint8_t*>(stream.data()), std::min(size, stream.size()));
    }

    ObfuscationSeed seed_;
    Rc4Stream client_to_server_;
    Rc4Stream server_to_client_;
};

// Passes `stream` through `transform` in the chunk sizes given (cycled), concatenating the output.
std::string in_chunks(std::string_view stream, const std::vector<std::size_t>& sizes,
                      const std::function<std::string(std::string_view)>& transform) {
    std::string out;
    std::size_t done = 0;
    for (std::size_t i = 0; done < stream.size(); ++i) {
        const std::size_t size = std::min(sizes[i % sizes.size()], stream.size() - done);
        out += transform(stream.substr(done, size));
        done += size;
    }
    return out;
}

struct Chunking {
    std::string name;
    std::vector<std::size_t> sizes;
};

std::vector<Chunking> chunkings(std::size_t stream_size) {
    std::vector<Chunking> result = {{"whole", {stream_size}}, {"one byte", {1}}, {"two and three", {2, 3}}};
    std::mt19937 random(20240611);
    for (int round = 0; round < 20; ++round) {
        Chunking chunking{"random " + std::to_string(round), {}};
        std::uniform_int_distribution<std::size_t> size(0, round % 2 ? 16 : 700);
        for (int i = 0; i < 64; ++i) chunking.sizes.push_back(size(random));
        chunking.sizes.push_back(1);  // a cycle of zeros must still advance
        result.push_back(std::move(chunking));
    }
    return result;
}

template <typename Call>
std::string error_of(Call&& call) {
    try {
        call();
    } catch (const Error& error) {
        return error.what();
    }
    return "(no error)";
}

std::string encrypted_server_stream(TestServer& server, const std::string& lines) {
    const std::string obfuscated = lines + server_version_line + server_packets;
    return server.encrypt_to_client(obfuscated + server_raw_part, obfuscated.size());
}

TEST(Rc4Stream, MatchesRfc6229) {
    Rc4Stream rc4({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16});
    std::string bytes(32, '\0');
    rc4.apply(reinterpret_cast<std::uint8_t*>(bytes.data()), bytes.size());
    EXPECT_EQ(hex(bytes), "9ac7cc9a609d1ef7b2932899cde41b975248c4959014126a6e8a84f11d1a9e1c");
}

TEST(Rc4Stream, OneKeystreamAcrossCalls) {
    const Rc4Key key = {42};
    Rc4Stream whole(key), pieces(key);
    std::string once = counting_bytes(1000), split = once;
    whole.apply(reinterpret_cast<std::uint8_t*>(once.data()), once.size());
    auto* data = reinterpret_cast<std::uint8_t*>(split.data());
    pieces.apply(data, 1);
    pieces.apply(data + 1, 0);
    pieces.apply(data + 1, 499);
    pieces.apply(data + 500, 500);
    EXPECT_EQ(once, split);
}

TEST(ObfuscationKey, MatchesTheTestVector) {
    EXPECT_EQ(hex_of_key(derive_obfuscation_key(vector_seed, vector_keyword, "client_to_server")),
              "dcef84d7a19fbd39c63b3671cec720cd");
    EXPECT_EQ(hex_of_key(derive_obfuscation_key(vector_seed, vector_keyword, "server_to_client")),
              "fd7c3f757fb23bd3dd5c096e0935bf35");
}

TEST(ObfuscatorTestVector, PreambleAndClientVersionLine) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    EXPECT_EQ(hex(obfuscator.preamble(counting_bytes(32))),
              "000102030405060708090a0b0c0d0e0f"
              "5227f303794d0f19b24919590fb797f87c3798ab4bc67ccade7b063e908d3e933385d49ffced385e");
    EXPECT_EQ(hex(obfuscator.outbound("SSH-2.0-OpenSSH_8.0\r\n")), "56d1cffd4a7f89d73c632f58d11245f5554c0309cf");
    EXPECT_FALSE(obfuscator.is_outbound_raw());
}

TEST(ObfuscatorTestVector, ServerKeystream) {
    Rc4Stream server_to_client(derive_obfuscation_key(vector_seed, vector_keyword, "server_to_client"));
    std::string keystream(16, '\0');
    server_to_client.apply(reinterpret_cast<std::uint8_t*>(keystream.data()), keystream.size());
    EXPECT_EQ(hex(keystream), "24617620698a132d15bc15fa2673cf08");

    // inbound() starts at offset 0 of that keystream.
    const std::string line = "SSH-2.0-Go-1.0\r\n";
    ASSERT_EQ(line.size(), keystream.size());
    std::string encrypted = line;
    for (std::size_t i = 0; i < line.size(); ++i) encrypted[i] = static_cast<char>(line[i] ^ keystream[i]);
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    EXPECT_EQ(obfuscator.inbound(encrypted), line);
}

TEST(ObfuscatorRoundTrip, ClientStreamInAnySplit) {
    for (const auto& chunking : chunkings(client_stream.size())) {
        SCOPED_TRACE(chunking.name);
        ClientObfuscator obfuscator(vector_keyword, vector_seed);
        TestServer server;
        EXPECT_EQ(server.read_preamble(obfuscator.preamble(counting_bytes(100))), counting_bytes(100));
        const auto outbound = [&](std::string_view bytes) { return obfuscator.outbound(bytes); };
        const std::string sent = in_chunks(client_stream, chunking.sizes, outbound);
        EXPECT_EQ(sent.substr(client_obfuscated_part.size()), client_raw_part);
        EXPECT_EQ(server.decrypt_from_client(sent, client_obfuscated_part.size()), client_stream);
        EXPECT_TRUE(obfuscator.is_outbound_raw());
        EXPECT_FALSE(obfuscator.is_inbound_raw());
    }
}

TEST(ObfuscatorRoundTrip, ServerStreamInAnySplit) {
    const std::string expected = server_version_line + server_packets + server_raw_part;
    for (const auto& chunking : chunkings(expected.size() + server_padding_lines.size())) {
        SCOPED_TRACE(chunking.name);
        ClientObfuscator obfuscator(vector_keyword, vector_seed);
        TestServer server;
        const std::string received = in_chunks(encrypted_server_stream(server, server_padding_lines), chunking.sizes,
                                               [&](std::string_view bytes) { return obfuscator.inbound(bytes); });
        EXPECT_EQ(hex(received), hex(expected));
        EXPECT_TRUE(obfuscator.is_inbound_raw());
        EXPECT_FALSE(obfuscator.is_outbound_raw());
    }
}

TEST(ObfuscatorRoundTrip, EmptyPreamblePaddingAndNoPaddingLines) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server;
    EXPECT_EQ(server.read_preamble(obfuscator.preamble("")), "");
    const std::string sent = obfuscator.outbound(client_stream);
    EXPECT_EQ(server.decrypt_from_client(sent, client_obfuscated_part.size()), client_stream);
    EXPECT_EQ(obfuscator.inbound(encrypted_server_stream(server, "")),
              server_version_line + server_packets + server_raw_part);
}

// docs/protocol.md §11: NEWKEYS and the next bytes arrive in one read; only the bytes up to the end
// of NEWKEYS may go through RC4.
TEST(ObfuscatorBoundary, OutboundStopsExactlyAfterTheClientNewkeys) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server;
    server.read_preamble(obfuscator.preamble(counting_bytes(40)));
    const std::string before_last_byte = client_obfuscated_part.substr(0, client_obfuscated_part.size() - 1);
    std::string sent = obfuscator.outbound(before_last_byte);
    EXPECT_FALSE(obfuscator.is_outbound_raw());
    sent += obfuscator.outbound(client_obfuscated_part.back() + client_raw_part);
    EXPECT_TRUE(obfuscator.is_outbound_raw());
    EXPECT_EQ(server.decrypt_from_client(sent, client_obfuscated_part.size()), client_stream);

    // Raw from then on, even for what looks like another NEWKEYS.
    EXPECT_EQ(obfuscator.outbound(newkeys_packet), newkeys_packet);
    EXPECT_EQ(obfuscator.outbound("SSH-2.0-x\r\n"), "SSH-2.0-x\r\n");
}

TEST(ObfuscatorBoundary, InboundStopsExactlyAfterTheServerNewkeys) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server;
    const std::string stream = encrypted_server_stream(server, server_padding_lines);
    const std::size_t newkeys_end = server_padding_lines.size() + server_version_line.size() + server_packets.size();

    std::string received = obfuscator.inbound(stream.substr(0, newkeys_end - 1));
    EXPECT_FALSE(obfuscator.is_inbound_raw());
    received += obfuscator.inbound(stream.substr(newkeys_end - 1, 1 + 5));
    EXPECT_TRUE(obfuscator.is_inbound_raw());
    received += obfuscator.inbound(stream.substr(newkeys_end + 5));
    EXPECT_EQ(hex(received), hex(server_version_line + server_packets + server_raw_part));
    EXPECT_EQ(obfuscator.inbound("\r\nSSH-"), "\r\nSSH-");
}

TEST(ObfuscatorBoundary, NewkeysRightAfterTheVersionLine) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server;
    const std::string obfuscated = "\r\nSSH-2.0-x\r\n" + packet(21, "", 4);
    const std::string stream = server.encrypt_to_client(obfuscated + "raw", obfuscated.size());
    EXPECT_EQ(obfuscator.inbound(stream), "SSH-2.0-x\r\n" + packet(21, "", 4) + "raw");
}

TEST(ObfuscatorLines, OnlyTheSshLineIsKept) {
    // Lines end at CRLF only (a bare LF does not end one); any line not starting "SSH-" is dropped.
    const std::string lines = std::string("hello SSH-2.0-x\r\n") + "abc\nSSH-2.0-y\r\n" + "SSH\r\n" + "ssh-2.0-z\r\n" +
                              "\r\n" + std::string(1022, 'x') + "\r\n" + "\n\r\r\n";
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server;
    EXPECT_EQ(obfuscator.inbound(encrypted_server_stream(server, lines)),
              server_version_line + server_packets + server_raw_part);
}

TEST(ObfuscatorLines, VersionLineIsHeldUntilItEnds) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server;
    const std::string stream = encrypted_server_stream(server, "\r\n");
    EXPECT_EQ(obfuscator.inbound(stream.substr(0, 2 + 8)), "");
    EXPECT_EQ(obfuscator.inbound(stream.substr(10, server_version_line.size() - 8)), server_version_line);
}

TEST(ObfuscatorErrors, LineOver1024Bytes) {
    const std::string longest = std::string(1022, '\0') + "\r\n";
    ClientObfuscator accepting(vector_keyword, vector_seed);
    TestServer server;
    EXPECT_EQ(accepting.inbound(encrypted_server_stream(server, longest)),
              server_version_line + server_packets + server_raw_part);

    ClientObfuscator refusing(vector_keyword, vector_seed);
    TestServer other_server;
    const std::string stream = encrypted_server_stream(other_server, std::string(1023, '\0') + "\r\n");
    EXPECT_EQ(refusing.inbound(stream.substr(0, 1023)), "");
    EXPECT_NE(error_of([&] { refusing.inbound(stream.substr(1023, 1)); }).find("line longer than 1024 bytes"),
              std::string::npos);
}

TEST(ObfuscatorErrors, PaddingLinesOver9216Bytes) {
    std::string lines;
    for (int i = 0; i < 9; ++i) lines += std::string(1022, '\0') + "\r\n";
    ASSERT_EQ(lines.size(), 9216u);
    ClientObfuscator accepting(vector_keyword, vector_seed);
    TestServer server;
    EXPECT_EQ(accepting.inbound(encrypted_server_stream(server, lines)),
              server_version_line + server_packets + server_raw_part);

    ClientObfuscator refusing(vector_keyword, vector_seed);
    TestServer other_server;
    EXPECT_NE(error_of([&] { refusing.inbound(encrypted_server_stream(other_server, lines + "\r\n")); })
                  .find("more than 9216 bytes of padding lines"),
              std::string::npos);
}

TEST(ObfuscatorErrors, ServerPacketOver256KiB) {
    for (std::uint32_t length : {262144u, 262145u}) {
        ClientObfuscator obfuscator(vector_keyword, vector_seed);
        TestServer server;
        const std::string obfuscated = server_version_line + u32(length) + "\x04\x14";
        const std::string stream = server.encrypt_to_client(obfuscated, obfuscated.size());
        if (length == 262144u) {
            EXPECT_EQ(obfuscator.inbound(stream), obfuscated);
        } else {
            EXPECT_NE(error_of([&] { obfuscator.inbound(stream); }).find("length 262145 is over 262144"),
                      std::string::npos);
        }
    }
}

TEST(ObfuscatorErrors, ServerPacketTooShortForItsPadding) {
    for (const auto& [length, padding_length] : {std::pair{1u, 0}, std::pair{5u, 4}, std::pair{5u, 255}}) {
        ClientObfuscator obfuscator(vector_keyword, vector_seed);
        TestServer server;
        const std::string obfuscated = server_version_line + u32(length) + static_cast<char>(padding_length) + "\x15";
        const std::string stream = server.encrypt_to_client(obfuscated, obfuscated.size());
        EXPECT_NE(error_of([&] { obfuscator.inbound(stream); }).find("leaves no room"), std::string::npos)
            << length << " " << padding_length;
    }
}

TEST(ObfuscatorErrors, WrongKeywordIsRefusedWithinTheLineLimits) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server("another keyword");
    const std::string stream = encrypted_server_stream(server, server_padding_lines) + std::string(10000, '\0');
    EXPECT_NE(error_of([&] { obfuscator.inbound(stream); }).find("obfuscation keyword"), std::string::npos);
}

TEST(ObfuscatorErrors, FailureIsFinal) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    TestServer server;
    const std::string bad = server_version_line + u32(1u << 30) + "\x04\x14";
    EXPECT_NE(error_of([&] { obfuscator.inbound(server.encrypt_to_client(bad, bad.size())); }), "(no error)");
    EXPECT_NE(error_of([&] { obfuscator.inbound("\r\n"); }).find("already failed"), std::string::npos);

    obfuscator.preamble("");
    const std::string client_bad = "SSH-2.0-x\r\n" + u32(1u << 30) + "\x04\x14";
    EXPECT_NE(error_of([&] { obfuscator.outbound(client_bad); }).find("client's SSH packet"), std::string::npos);
    EXPECT_NE(error_of([&] { obfuscator.outbound("x"); }).find("already failed"), std::string::npos);
}

TEST(ObfuscatorErrors, PreambleRules) {
    ClientObfuscator obfuscator(vector_keyword, vector_seed);
    EXPECT_NE(error_of([&] { obfuscator.outbound("SSH-2.0-x\r\n"); }).find("preamble must be sent"), std::string::npos);
    EXPECT_NE(error_of([&] { obfuscator.preamble(std::string(8193, '\0')); }).find("over the 8192 byte limit"),
              std::string::npos);
    EXPECT_EQ(obfuscator.preamble(std::string(8192, '\0')).size(), 16u + 8u + 8192u);
    EXPECT_NE(error_of([&] { obfuscator.preamble(""); }).find("already sent"), std::string::npos);
}

TEST(ObfuscatorErrors, ClientVersionLineOver1024Bytes) {
    ClientObfuscator accepting(vector_keyword, vector_seed);
    accepting.preamble("");
    EXPECT_EQ(accepting.outbound("SSH-" + std::string(1018, 'x') + "\r\n").size(), 1024u);

    ClientObfuscator refusing(vector_keyword, vector_seed);
    refusing.preamble("");
    EXPECT_NE(error_of([&] { refusing.outbound("SSH-" + std::string(1019, 'x') + "\r\n"); })
                  .find("longer than 1024 bytes"),
              std::string::npos);
}

}  // namespace
}  // namespace psi::ssh
