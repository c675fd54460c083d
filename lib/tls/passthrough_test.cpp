#include "tls/passthrough.hpp"

#include <gtest/gtest.h>

#include <string>

namespace psi::tls {
namespace {

const std::string key = "39b3bc49a03e743c9a00e32817a580c7470c1d2be6b28b9d11ae170224574c3f";
constexpr std::int64_t now = 1796677200;

ClientRandom from_hex(const std::string& hex) {
    ClientRandom bytes{};
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
    return bytes;
}

// Computed apart from psi, with Python's hmac and hashlib (HKDF by RFC 5869's steps), nonce 00..0f.
TEST(Passthrough, AMessageMadeElsewhereIsAccepted) {
    const ClientRandom message = from_hex("000102030405060708090a0b0c0d0e0f06bcee6b0a3f82937af24e36c35becc7");
    EXPECT_TRUE(is_passthrough_message(key, message, now));
    EXPECT_TRUE(is_passthrough_message(key, message, now + passthrough_period_seconds));  // the period after
    EXPECT_TRUE(is_passthrough_message(key, message, now - passthrough_period_seconds));  // and before
    EXPECT_FALSE(is_passthrough_message(key, message, now + 3 * passthrough_period_seconds));
    EXPECT_FALSE(is_passthrough_message(key.substr(1), message, now));
    ClientRandom flipped = message;
    flipped[31] ^= 1;
    EXPECT_FALSE(is_passthrough_message(key, flipped, now));
    flipped = message;
    flipped[0] ^= 1;  // the nonce is what the MAC covers
    EXPECT_FALSE(is_passthrough_message(key, flipped, now));
}

TEST(Passthrough, EachMessageIsFreshAndValid) {
    const ClientRandom first = passthrough_message(key, now);
    const ClientRandom second = passthrough_message(key, now);
    EXPECT_NE(first, second);
    EXPECT_TRUE(is_passthrough_message(key, first, now));
    EXPECT_TRUE(is_passthrough_message(key, second, now + 60));
    EXPECT_FALSE(is_passthrough_message("another key", first, now));
}

}  // namespace
}  // namespace psi::tls
