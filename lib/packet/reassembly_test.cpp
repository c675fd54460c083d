#include "packet/reassembly.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <variant>

#include "packet/ip_address.hpp"
#include "packet/packet_builder.hpp"

namespace psi::packet {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

Endpoint endpoint(const std::string& address, std::uint16_t port) { return {parse_ip_address(address, "test"), port}; }

// A UDP datagram of `size` payload bytes, whole, as an application would send it.
Bytes datagram(const std::string& from, const std::string& to, std::size_t size) {
    Bytes payload(size);
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<std::uint8_t>(i * 7 + 3);
    return build_udp(endpoint(from, 40000), endpoint(to, 7200), payload);
}

// The piece [begin, end) of `whole`'s transport bytes, as a fragment with identification `id`.
Bytes fragment(const Bytes& whole, std::size_t begin, std::size_t end, std::uint32_t id) {
    const bool is_v4 = whole[0] >> 4 == 4;
    const std::size_t header = is_v4 ? 20 : 40;
    const bool has_more = end < whole.size() - header;
    Bytes piece(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(header));
    if (is_v4) {
        const std::uint16_t field = static_cast<std::uint16_t>((has_more ? 0x2000 : 0) | (begin / 8));
        piece[4] = static_cast<std::uint8_t>(id >> 8);
        piece[5] = static_cast<std::uint8_t>(id);
        piece[6] = static_cast<std::uint8_t>(field >> 8);
        piece[7] = static_cast<std::uint8_t>(field);
        const std::size_t total = header + end - begin;
        piece[2] = static_cast<std::uint8_t>(total >> 8);
        piece[3] = static_cast<std::uint8_t>(total);
    } else {
        const std::uint8_t next = piece[6];
        piece[6] = 44;
        const std::uint16_t field = static_cast<std::uint16_t>(begin | (has_more ? 1 : 0));
        piece.insert(piece.end(), {next, 0, static_cast<std::uint8_t>(field >> 8), static_cast<std::uint8_t>(field),
                                   static_cast<std::uint8_t>(id >> 24), static_cast<std::uint8_t>(id >> 16),
                                   static_cast<std::uint8_t>(id >> 8), static_cast<std::uint8_t>(id)});
        const std::size_t payload_length = 8 + end - begin;
        piece[4] = static_cast<std::uint8_t>(payload_length >> 8);
        piece[5] = static_cast<std::uint8_t>(payload_length);
    }
    piece.insert(piece.end(), whole.begin() + static_cast<std::ptrdiff_t>(header + begin),
                 whole.begin() + static_cast<std::ptrdiff_t>(header + end));
    return piece;
}

Bytes transport_of(const Bytes& packet) {
    const auto view = std::get<PacketView>(parse_packet(packet));
    return Bytes(packet.begin() + static_cast<std::ptrdiff_t>(view.ip_header_length),
                 packet.begin() + static_cast<std::ptrdiff_t>(view.total_length));
}

TEST(Reassembler, PutsAnIpv4DatagramBackTogetherInAnyOrder) {
    const Bytes whole = datagram("10.200.3.1", "198.51.100.10", 3000);  // 3008 bytes of UDP
    const Reassembler::Clock::time_point now{};
    for (const std::vector<std::pair<std::size_t, std::size_t>>& order :
         {std::vector<std::pair<std::size_t, std::size_t>>{{0, 1480}, {1480, 2960}, {2960, 3008}},
          {{2960, 3008}, {0, 1480}, {1480, 2960}}}) {
        Reassembler reassembler;
        std::optional<Bytes> result;
        for (const auto& [begin, end] : order) {
            const Bytes piece = fragment(whole, begin, end, 0x4242);
            EXPECT_TRUE(Reassembler::is_fragment(piece));
            EXPECT_FALSE(result) << "complete before the last piece";
            result = reassembler.add(piece, now);
        }
        ASSERT_TRUE(result);
        EXPECT_EQ(transport_of(*result), transport_of(whole));
        const auto view = std::get<PacketView>(parse_packet(*result));
        EXPECT_TRUE(has_valid_checksums(*result, view));
        EXPECT_EQ(view.destination, endpoint("198.51.100.10", 7200));
        EXPECT_EQ(reassembler.pending(), 0u);
    }
}

TEST(Reassembler, PutsAnIpv6DatagramBackTogether) {
    const Bytes whole = datagram("fd42:42:42::1", "2001:db8:100::10", 2500);
    Reassembler reassembler;
    EXPECT_FALSE(reassembler.add(fragment(whole, 1448, 2508, 7), {}));
    const auto result = reassembler.add(fragment(whole, 0, 1448, 7), {});
    ASSERT_TRUE(result);
    EXPECT_EQ(transport_of(*result), transport_of(whole));
    EXPECT_TRUE(has_valid_checksums(*result, std::get<PacketView>(parse_packet(*result))));
}

TEST(Reassembler, KeepsDatagramsOfDifferentIdentificationsApart) {
    const Bytes first = datagram("10.200.3.1", "198.51.100.10", 2000);
    const Bytes second = datagram("10.200.3.1", "198.51.100.10", 2000);
    Reassembler reassembler;
    EXPECT_FALSE(reassembler.add(fragment(first, 0, 1480, 1), {}));
    EXPECT_FALSE(reassembler.add(fragment(second, 0, 1480, 2), {}));
    EXPECT_EQ(reassembler.pending(), 2u);
    EXPECT_TRUE(reassembler.add(fragment(second, 1480, 2008, 2), {}));
    EXPECT_TRUE(reassembler.add(fragment(first, 1480, 2008, 1), {}));
}

TEST(Reassembler, DropsTheWholeDatagramWhenPiecesOverlap) {
    const Bytes whole = datagram("10.200.3.1", "198.51.100.10", 3000);
    Reassembler reassembler;
    EXPECT_FALSE(reassembler.add(fragment(whole, 0, 1480, 9), {}));
    EXPECT_FALSE(reassembler.add(fragment(whole, 1472, 2960, 9), {}));  // overlaps by 8 bytes
    EXPECT_EQ(reassembler.pending(), 0u);
    EXPECT_FALSE(reassembler.add(fragment(whole, 2960, 3008, 9), {}));
}

TEST(Reassembler, ForgetsDatagramsWhosePiecesStopComing) {
    const Bytes whole = datagram("10.200.3.1", "198.51.100.10", 3000);
    Reassembler reassembler;
    const Reassembler::Clock::time_point start{};
    EXPECT_FALSE(reassembler.add(fragment(whole, 0, 1480, 5), start));
    EXPECT_EQ(reassembler.expire(start + 9s), 0u);
    EXPECT_EQ(reassembler.expire(start + 10s), 1u);
    EXPECT_FALSE(reassembler.add(fragment(whole, 1480, 2960, 5), start + 11s));
    EXPECT_FALSE(reassembler.add(fragment(whole, 2960, 3008, 5), start + 11s)) << "the first piece was forgotten";
}

TEST(Reassembler, HoldsAtMost64DatagramsTheOldestGivingWay) {
    const Bytes whole = datagram("10.200.3.1", "198.51.100.10", 2000);
    Reassembler reassembler;
    const Reassembler::Clock::time_point start{};
    for (std::uint32_t id = 0; id < 100; ++id)
        reassembler.add(fragment(whole, 0, 1480, id), start + std::chrono::milliseconds(id));
    EXPECT_EQ(reassembler.pending(), 64u);
    EXPECT_FALSE(reassembler.add(fragment(whole, 1480, 2008, 0), start + 1s)) << "the oldest was kept";
    EXPECT_TRUE(reassembler.add(fragment(whole, 1480, 2008, 99), start + 1s));
}

TEST(Reassembler, RefusesMalformedPiecesAndLeavesWholePacketsAlone) {
    const Bytes whole = datagram("10.200.3.1", "198.51.100.10", 3000);
    EXPECT_FALSE(Reassembler::is_fragment(whole));
    EXPECT_FALSE(Reassembler::is_fragment(datagram("fd42:42:42::1", "2001:db8::1", 100)));
    Reassembler reassembler;
    EXPECT_FALSE(reassembler.add(fragment(whole, 0, 1481, 3), {})) << "a middle piece not a multiple of 8";
    Bytes truncated = fragment(whole, 0, 1480, 3);
    truncated.resize(100);
    EXPECT_FALSE(reassembler.add(truncated, {}));
    // Past what one datagram can carry.
    Bytes far = fragment(whole, 2960, 3008, 3);
    far[6] = 0x1f;
    far[7] = 0xff;
    EXPECT_FALSE(reassembler.add(far, {}));
    // An IPv6 fragment whose next header is another Fragment header (found by the fuzz target:
    // put back together, it would be a fragment again, and again).
    Bytes nested = fragment(datagram("fd42:42:42::1", "2001:db8::1", 2000), 0, 1448, 4);
    nested[40] = 44;
    EXPECT_FALSE(reassembler.add(nested, {}));
    EXPECT_EQ(reassembler.pending(), 0u);
}

}  // namespace
}  // namespace psi::packet
