#include "core/encoding.hpp"

#include <gtest/gtest.h>

namespace psi::encoding {
namespace {

const std::string all_bytes = [] {
    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
    return bytes;
}();

TEST(EncodingHex, EncodesLowercase) {
    EXPECT_EQ(hex_encode(""), "");
    EXPECT_EQ(hex_encode(std::string("\x00\x01\xab\xff", 4)), "0001abff");
    EXPECT_EQ(hex_encode("0 0"), "302030");
}

TEST(EncodingHex, DecodesEitherCase) {
    EXPECT_EQ(hex_decode(""), "");
    EXPECT_EQ(hex_decode("0001abff"), std::string("\x00\x01\xab\xff", 4));
    EXPECT_EQ(hex_decode("ABff"), "\xab\xff");
}

TEST(EncodingHex, RoundTripsEveryByte) { EXPECT_EQ(hex_decode(hex_encode(all_bytes)), all_bytes); }

TEST(EncodingHex, RejectsOddLengthAndStrayCharacters) {
    for (const char* text : {"0", "abc", "0g", "g0", " 00", "00 ", "00\n", "0x00", "+0", "-1", "zz"})
        EXPECT_FALSE(hex_decode(text)) << text;
    EXPECT_FALSE(hex_decode(std::string("0\0", 2)));
}

// RFC 4648 §10 test vectors.
TEST(EncodingBase64, MatchesRfc4648Vectors) {
    const std::pair<const char*, const char*> vectors[] = {
        {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [bytes, text] : vectors) {
        EXPECT_EQ(base64_encode(bytes), text);
        EXPECT_EQ(base64_decode(text), bytes) << text;
    }
}

TEST(EncodingBase64, UsesTheStandardAlphabet) {
    EXPECT_EQ(base64_encode("\xfb\xff\xbf"), "+/+/");
    EXPECT_EQ(base64_decode("+/+/"), "\xfb\xff\xbf");
    EXPECT_FALSE(base64_decode("-_-_"));  // URL-safe alphabet
}

TEST(EncodingBase64, RoundTripsEveryByteAndLength) {
    for (std::size_t length = 0; length <= all_bytes.size(); length += 1) {
        std::string bytes = all_bytes.substr(256 - length);
        ASSERT_EQ(base64_decode(base64_encode(bytes)), bytes) << length;
    }
}

TEST(EncodingBase64, RejectsAnythingButTheCanonicalForm) {
    for (const char* text : {
             "Zg",        // padding missing
             "Zg=",       // padding short
             "Zm9",       // length not a multiple of 4
             "Zg===",     // too much padding
             "====",      // padding only
             "Z===",      // one character cannot make a byte
             "=Zm9",      // padding first
             "Zg==Zm8=",  // padding in the middle
             "Zm=v",      // padding inside a group
             "Zh==",      // unused bits set (canonical is Zg==)
             "Zm9=",      // unused bits set (canonical is Zm8=)
             "Zm9v\n",    // whitespace
             " Zm9v",     // whitespace
             "Zm 9v",     // whitespace
             "Zm9*",      // not in the alphabet
         })
        EXPECT_FALSE(base64_decode(text)) << text;
    EXPECT_FALSE(base64_decode(std::string("Zm9\0", 4)));
}

}  // namespace
}  // namespace psi::encoding
