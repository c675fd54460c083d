#include "connect/packet_filter.hpp"

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "engine/engine_context.hpp"
#include "packet/ip_address.hpp"
#include "packet/packet_builder.hpp"

namespace psi::connect {
namespace {

using Bytes = std::vector<std::uint8_t>;
using packet::Endpoint;

Endpoint endpoint(const std::string& address, std::uint16_t port) {
    return {packet::parse_ip_address(address, "test"), port};
}

const PacketTunnelAddresses addresses{packet::parse_ip_address("10.200.3.1", "test"),
                                      packet::parse_ip_address("fd42:42:42::1", "test"),
                                      24,
                                      64,
                                      packet::parse_ip_address("10.200.3.2", "test"),
                                      packet::parse_ip_address("fd42:42:42::2", "test")};
const std::vector<std::uint8_t> payload = {'q', 'u', 'e', 'r', 'y'};

packet::PacketView view_of(const Bytes& packet) { return std::get<packet::PacketView>(packet::parse_packet(packet)); }

Bytes udp(const std::string& from, std::uint16_t from_port, const std::string& to, std::uint16_t to_port) {
    return packet::build_udp(endpoint(from, from_port), endpoint(to, to_port), payload);
}

TEST(PacketFilter, QueriesToTheInTunnelResolverGoToTheServersResolverWithValidChecksums) {
    Bytes packet = udp("10.200.3.1", 40000, "10.200.3.2", 53);
    ASSERT_EQ(filter_outbound(packet, addresses), OutboundDrop::none);
    const packet::PacketView view = view_of(packet);
    EXPECT_EQ(view.destination, endpoint("10.0.0.2", 53));
    EXPECT_EQ(view.source, endpoint("10.200.3.1", 40000));
    EXPECT_TRUE(packet::has_valid_checksums(packet, view));

    Bytes v6 = udp("fd42:42:42::1", 40000, "fd42:42:42::2", 53);
    ASSERT_EQ(filter_outbound(v6, addresses), OutboundDrop::none);
    EXPECT_EQ(view_of(v6).destination, endpoint("fd19:ca83:e6d5:1c44::2", 53));
    EXPECT_TRUE(packet::has_valid_checksums(v6, view_of(v6)));
}

TEST(PacketFilter, AnswersFromTheServersResolverComeFromTheAddressTheApplicationAsked) {
    Bytes packet = udp("10.0.0.2", 53, "10.200.3.1", 40000);
    ASSERT_TRUE(accept_inbound(packet, addresses));
    EXPECT_EQ(view_of(packet).source, endpoint("10.200.3.2", 53));
    EXPECT_TRUE(packet::has_valid_checksums(packet, view_of(packet)));

    Bytes v6 = udp("fd19:ca83:e6d5:1c44::2", 53, "fd42:42:42::1", 40000);
    ASSERT_TRUE(accept_inbound(v6, addresses));
    EXPECT_EQ(view_of(v6).source, endpoint("fd42:42:42::2", 53));
    EXPECT_TRUE(packet::has_valid_checksums(v6, view_of(v6)));
}

TEST(PacketFilter, OrdinaryPacketsPassUnchanged) {
    Bytes packet = udp("10.200.3.1", 40000, "198.51.100.10", 7);
    const Bytes before = packet;
    EXPECT_EQ(filter_outbound(packet, addresses), OutboundDrop::none);
    EXPECT_EQ(packet, before);
    Bytes answer = udp("198.51.100.10", 53, "10.200.3.1", 40000);  // port 53, but not the server's resolver
    const Bytes answer_before = answer;
    EXPECT_TRUE(accept_inbound(answer, addresses));
    EXPECT_EQ(answer, answer_before);
}

TEST(PacketFilter, DropsWhatThePsiphonServerWouldDrop) {
    Bytes loopback = udp("10.200.3.1", 40000, "127.0.0.1", 53);
    EXPECT_EQ(filter_outbound(loopback, addresses), OutboundDrop::destination);
    Bytes multicast = udp("10.200.3.1", 5353, "224.0.0.251", 5353);
    EXPECT_EQ(filter_outbound(multicast, addresses), OutboundDrop::destination);
    Bytes link_local = udp("fd42:42:42::1", 5353, "ff02::fb", 5353);
    EXPECT_EQ(filter_outbound(link_local, addresses), OutboundDrop::destination);
    Bytes other_port = udp("10.200.3.1", 40000, "10.200.3.2", 853);  // only DNS goes to the resolver address
    EXPECT_EQ(filter_outbound(other_port, addresses), OutboundDrop::destination);
    Bytes port_zero = udp("10.200.3.1", 40000, "198.51.100.10", 0);
    EXPECT_EQ(filter_outbound(port_zero, addresses), OutboundDrop::port_zero);

    Bytes original = udp("198.51.100.10", 7, "10.200.3.1", 40000);
    Bytes icmp = packet::build_unreachable(original, view_of(original), packet::Unreachable::port);
    EXPECT_EQ(filter_outbound(icmp, addresses), OutboundDrop::protocol);
}

TEST(PacketFilter, OnlyTheTunsOwnAddressIsSentAsTheSource) {
    // Like the kernel's reset for a socket gone, which leaves from the uplink's address.
    Bytes uplink = udp("192.168.77.10", 51418, "198.51.100.10", 4443);
    EXPECT_EQ(filter_outbound(uplink, addresses), OutboundDrop::source);
    Bytes other_v4 = udp("10.200.3.3", 40000, "198.51.100.10", 7);
    EXPECT_EQ(filter_outbound(other_v4, addresses), OutboundDrop::source);
    Bytes uplink_v6 = udp("2001:db8:77::10", 40000, "2001:db8:100::10", 7);
    EXPECT_EQ(filter_outbound(uplink_v6, addresses), OutboundDrop::source);
    Bytes query_from_elsewhere = udp("192.168.77.10", 40000, "10.200.3.2", 53);
    EXPECT_EQ(filter_outbound(query_from_elsewhere, addresses), OutboundDrop::source);
}

TEST(PacketFilter, TheServerReachesOnlyTheTunsAddressAndNeverPosesAsTheTunsOwnNetwork) {
    // The kill switch lets psi-tun run's NAT legs (from .3) reach local listeners.
    Bytes nat_leg = udp("10.200.3.3", 40000, "10.200.3.1", 22);
    EXPECT_FALSE(accept_inbound(nat_leg, addresses));
    Bytes nat_leg_v6 = udp("fd42:42:42::3", 40000, "fd42:42:42::1", 22);
    EXPECT_FALSE(accept_inbound(nat_leg_v6, addresses));
    Bytes posing_as_dns = udp("10.200.3.2", 53, "10.200.3.1", 40000);  // only 10.0.0.2's answers become that
    EXPECT_FALSE(accept_inbound(posing_as_dns, addresses));
    Bytes elsewhere = udp("198.51.100.10", 7, "10.200.3.9", 40000);
    EXPECT_FALSE(accept_inbound(elsewhere, addresses));
    Bytes loopback = udp("198.51.100.10", 7, "127.0.0.1", 40000);
    EXPECT_FALSE(accept_inbound(loopback, addresses));
    Bytes ordinary = udp("198.51.100.10", 7, "10.200.3.1", 40000);
    EXPECT_TRUE(accept_inbound(ordinary, addresses));
}

TEST(PacketFilter, DropsMalformedPackets) {
    Bytes truncated = udp("10.200.3.1", 40000, "198.51.100.10", 7);
    truncated.pop_back();
    EXPECT_EQ(filter_outbound(truncated, addresses), OutboundDrop::malformed);
    EXPECT_FALSE(accept_inbound(truncated, addresses));

    Bytes padded = udp("10.200.3.1", 40000, "198.51.100.10", 7);
    padded.push_back(0);  // more bytes than the IP header's total length
    EXPECT_EQ(filter_outbound(padded, addresses), OutboundDrop::malformed);

    // IPv4 options (IHL 6): the header grows by 4 bytes, the total length with it.
    Bytes options = udp("10.200.3.1", 40000, "198.51.100.10", 7);
    options.insert(options.begin() + 20, {1, 1, 1, 1});  // four NOPs
    options[0] = 0x46;
    options[3] = static_cast<std::uint8_t>(options[3] + 4);
    EXPECT_EQ(filter_outbound(options, addresses), OutboundDrop::malformed);

    Bytes garbage = {0x60, 0, 0};
    EXPECT_EQ(filter_outbound(garbage, addresses), OutboundDrop::malformed);
    EXPECT_FALSE(accept_inbound(garbage, addresses));
}

}  // namespace
}  // namespace psi::connect
