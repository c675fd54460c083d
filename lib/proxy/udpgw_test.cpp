#include "proxy/udpgw.hpp"

#include <gtest/gtest.h>

#include <initializer_list>

#include "core/error.hpp"
#include "testing/test_support.hpp"

namespace psi::proxy {
namespace {

using psi::testing::bytes;

const std::string google_dns = bytes({8, 8, 8, 8});
const std::string ipv6_dns = bytes({0x20, 0x01, 0x48, 0x60, 0x48, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x88});

// size 12 = flags 1 + conid 2 + address 4 + port 2 + payload 3
const std::string ipv4_frame = bytes({12, 0, 0, 0x02, 0x01, 8, 8, 8, 8, 0, 53}) + "abc";
// size 23 = flags 1 + conid 2 + address 16 + port 2 + payload 2; flags=0 as psiphond sends it
const std::string ipv6_frame = bytes({23, 0, 0, 0x34, 0x12}) + ipv6_dns + bytes({0x01, 0xbb}) + "hi";

TEST(UdpgwEncode, WritesIpv4Frame) {
    UdpgwMessage message;
    message.connection_id = 0x0102;
    message.address = google_dns;
    message.port = 53;
    message.payload = "abc";
    EXPECT_EQ(encode_udpgw(message), ipv4_frame);
}

TEST(UdpgwEncode, WritesIpv6FrameWithTheIpv6Flag) {
    UdpgwMessage message;
    message.connection_id = 0x1234;
    message.is_ipv6 = true;
    message.address = ipv6_dns;
    message.port = 443;
    message.payload = "hi";
    auto expected = ipv6_frame;
    expected[2] = udpgw_flags::ipv6;
    EXPECT_EQ(encode_udpgw(message), expected);
}

TEST(UdpgwEncode, WritesDnsAndRebindFlags) {
    UdpgwMessage message;
    message.flags = udpgw_flags::dns | udpgw_flags::rebind;
    message.connection_id = 7;
    message.address = bytes({0, 0, 0, 0});
    message.port = 53;
    EXPECT_EQ(encode_udpgw(message), bytes({9, 0, 0x06, 7, 0, 0, 0, 0, 0, 0, 53}));
}

TEST(UdpgwEncode, RefusesWrongAddressesAndOversizedPayloads) {
    UdpgwMessage message;
    message.address = google_dns;
    message.payload = std::string(udpgw_max_payload, 'x');
    const std::string largest = encode_udpgw(message);
    EXPECT_EQ(largest.size(), 2 + 9 + udpgw_max_payload);
    EXPECT_EQ(largest.substr(0, 2), bytes({0x09, 0x80}));

    message.payload += 'x';
    EXPECT_THROW(encode_udpgw(message), Error);
    message.payload.clear();
    for (const std::string& address : {std::string(), std::string(5, '\0'), ipv6_dns}) {
        message.address = address;
        EXPECT_THROW(encode_udpgw(message), Error) << address.size();
    }
    message.is_ipv6 = true;
    message.address = google_dns;
    EXPECT_THROW(encode_udpgw(message), Error);
    message.is_ipv6 = false;
    message.flags = udpgw_flags::ipv6;
    EXPECT_THROW(encode_udpgw(message), Error);
}

TEST(UdpgwParse, ReadsIpv4Frame) {
    const auto parsed = parse_udpgw(ipv4_frame, false);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, ipv4_frame.size());
    EXPECT_EQ(parsed.message.flags, 0);
    EXPECT_EQ(parsed.message.connection_id, 0x0102);
    EXPECT_FALSE(parsed.message.is_ipv6);
    EXPECT_EQ(parsed.message.address, google_dns);
    EXPECT_EQ(parsed.message.port, 53);
    EXPECT_EQ(parsed.message.payload, "abc");
}

// psiphond leaves flags at 0 for IPv6 downstream: the connection decides the address length.
TEST(UdpgwParse, ReadsIpv6FrameWithFlagsZeroFromTheConnection) {
    const auto parsed = parse_udpgw(ipv6_frame, true);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, ipv6_frame.size());
    EXPECT_TRUE(parsed.message.is_ipv6);
    EXPECT_EQ(parsed.message.connection_id, 0x1234);
    EXPECT_EQ(parsed.message.address, ipv6_dns);
    EXPECT_EQ(parsed.message.port, 443);
    EXPECT_EQ(parsed.message.payload, "hi");

    // The same bytes on an IPv4 connection are a different (valid) frame: the quirk in full.
    const auto as_ipv4 = parse_udpgw(ipv6_frame, false);
    ASSERT_EQ(as_ipv4.status, ParseStatus::complete);
    EXPECT_EQ(as_ipv4.message.address, ipv6_dns.substr(0, 4));
    EXPECT_EQ(as_ipv4.message.payload.size(), 14u);
}

TEST(UdpgwParse, HonoursTheIpv6FlagWhenSet) {
    auto frame = ipv6_frame;
    frame[2] = udpgw_flags::ipv6;
    const auto parsed = parse_udpgw(frame, false);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_TRUE(parsed.message.is_ipv6);
    EXPECT_EQ(parsed.message.address, ipv6_dns);
}

TEST(UdpgwParse, KeepsTheDnsFlag) {
    auto frame = ipv4_frame;
    frame[2] = udpgw_flags::dns;
    const auto parsed = parse_udpgw(frame, false);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.message.flags, udpgw_flags::dns);
    EXPECT_EQ(parsed.message.payload, "abc");
}

TEST(UdpgwParse, ReadsKeepaliveFramesWithOrWithoutAnAddress) {
    const std::string bare = bytes({3, 0, udpgw_flags::keepalive, 0, 0});
    for (bool is_ipv6 : {false, true}) {
        const auto parsed = parse_udpgw(bare, is_ipv6);
        ASSERT_EQ(parsed.status, ParseStatus::complete);
        EXPECT_EQ(parsed.consumed, 5u);
        EXPECT_EQ(parsed.message.flags, udpgw_flags::keepalive);
        EXPECT_TRUE(parsed.message.address.empty());
    }
    auto full = ipv4_frame;
    full[2] = udpgw_flags::keepalive;
    const auto parsed = parse_udpgw(full, false);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, full.size());
    EXPECT_EQ(parsed.message.connection_id, 0x0102);
    EXPECT_TRUE(parsed.message.payload.empty());
}

TEST(UdpgwParse, NeedsMoreAtEveryByteBoundary) {
    for (const auto& [frame, is_ipv6] : {std::pair{ipv4_frame, false}, std::pair{ipv6_frame, true}})
        for (std::size_t size = 0; size < frame.size(); ++size)
            EXPECT_EQ(parse_udpgw(frame.substr(0, size), is_ipv6).status, ParseStatus::need_more) << size;
}

TEST(UdpgwParse, ReadsTwoFramesBackToBack) {
    const std::string stream = ipv4_frame + bytes({9, 0, 0, 0x03, 0, 1, 2, 3, 4, 0x12, 0x34});
    const auto first = parse_udpgw(stream, false);
    ASSERT_EQ(first.status, ParseStatus::complete);
    ASSERT_EQ(first.consumed, ipv4_frame.size());
    EXPECT_EQ(first.message.payload, "abc");
    const auto second = parse_udpgw(std::string_view(stream).substr(first.consumed), false);
    ASSERT_EQ(second.status, ParseStatus::complete);
    EXPECT_EQ(second.consumed, 11u);
    EXPECT_EQ(second.message.connection_id, 3);
    EXPECT_EQ(second.message.port, 0x1234);
    EXPECT_EQ(second.message.payload, "");
}

TEST(UdpgwParse, RefusesASizeThatCannotHoldTheHeader) {
    for (int size : {0, 1, 2})
        EXPECT_EQ(parse_udpgw(bytes({size, 0}), false).status, ParseStatus::malformed) << size;
    for (int size = 3; size < 9; ++size) {
        const std::string frame = bytes({size, 0, 0}) + std::string(size - 1, '\0');
        EXPECT_EQ(parse_udpgw(frame, false).status, ParseStatus::malformed) << size;
        EXPECT_EQ(parse_udpgw(frame.substr(0, 3), false).status, ParseStatus::malformed) << size;
    }
    EXPECT_EQ(parse_udpgw(bytes({9, 0, 0}) + std::string(8, '\0'), false).status, ParseStatus::complete);
    EXPECT_EQ(parse_udpgw(bytes({20, 0, 0}) + std::string(19, '\0'), true).status, ParseStatus::malformed);
    EXPECT_EQ(parse_udpgw(bytes({21, 0, 0}) + std::string(20, '\0'), true).status, ParseStatus::complete);
}

TEST(UdpgwParse, RefusesPayloadsOverTheLimitBeforeTheyArrive) {
    // 9 + 32768 = 0x8009 is the largest IPv4 frame, 21 + 32768 = 0x8015 the largest IPv6 one.
    const std::string largest_ipv4 = bytes({0x09, 0x80, 0}) + std::string(0x8008, 'x');
    EXPECT_EQ(parse_udpgw(largest_ipv4, false).status, ParseStatus::complete);
    EXPECT_EQ(parse_udpgw(largest_ipv4, false).message.payload.size(), udpgw_max_payload);
    EXPECT_EQ(parse_udpgw(bytes({0x0a, 0x80, 0}), false).status, ParseStatus::malformed);
    EXPECT_EQ(parse_udpgw(bytes({0x15, 0x80, 0}), true).status, ParseStatus::need_more);
    EXPECT_EQ(parse_udpgw(bytes({0x16, 0x80, 0}), true).status, ParseStatus::malformed);
    EXPECT_EQ(parse_udpgw(bytes({0x0a, 0x80}), false).status, ParseStatus::need_more);  // IPv6 flag may follow
    EXPECT_EQ(parse_udpgw(bytes({0x16, 0x80}), false).status, ParseStatus::malformed);
    EXPECT_EQ(parse_udpgw(bytes({0xff, 0xff}), false).status, ParseStatus::malformed);
}

TEST(UdpgwParse, RoundTripsEncodedMessages) {
    UdpgwMessage message;
    message.flags = udpgw_flags::dns;
    message.connection_id = 0xfffe;
    message.address = google_dns;
    message.port = 65535;
    message.payload = std::string("\0\x01\x02", 3);
    for (bool is_ipv6 : {false, true}) {
        message.is_ipv6 = is_ipv6;
        message.address = is_ipv6 ? ipv6_dns : google_dns;
        const std::string encoded = encode_udpgw(message);
        const auto parsed = parse_udpgw(encoded, is_ipv6);
        ASSERT_EQ(parsed.status, ParseStatus::complete);
        EXPECT_EQ(parsed.consumed, encoded.size());
        EXPECT_EQ(parsed.message.connection_id, message.connection_id);
        EXPECT_EQ(parsed.message.address, message.address);
        EXPECT_EQ(parsed.message.port, message.port);
        EXPECT_EQ(parsed.message.payload, message.payload);
        EXPECT_EQ(encode_udpgw(parsed.message), encoded);
    }
}

TEST(UdpgwPeek, FindsTheConnectionIdOnceItIsThere) {
    for (std::size_t size = 0; size < 5; ++size)
        EXPECT_FALSE(peek_udpgw_connection_id(ipv6_frame.substr(0, size))) << size;
    EXPECT_EQ(peek_udpgw_connection_id(ipv6_frame.substr(0, 5)), 0x1234);
    EXPECT_EQ(peek_udpgw_connection_id(ipv4_frame), 0x0102);
    EXPECT_FALSE(peek_udpgw_connection_id(bytes({2, 0, 0, 1, 2})));
}

}  // namespace
}  // namespace psi::proxy
