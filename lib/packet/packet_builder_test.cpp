#include "packet/packet_builder.hpp"

#include <arpa/inet.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "packet/ip_address.hpp"

#include "packet/packet.hpp"

namespace psi::packet {
namespace {

using Bytes = std::vector<std::uint8_t>;

Endpoint endpoint(const std::string& address, std::uint16_t port) { return {parse_ip_address(address, "test"), port}; }

PacketView parsed(const Bytes& packet) {
    const auto result = parse_packet(packet);
    if (const auto* error = std::get_if<PacketError>(&result))
        throw std::runtime_error(std::string("did not parse: ") + packet_error_name(*error));
    return std::get<PacketView>(result);
}

std::uint16_t get_u16(const Bytes& bytes, std::size_t offset) {
    return static_cast<std::uint16_t>(bytes.at(offset) << 8 | bytes.at(offset + 1));
}

void put_u16(Bytes& bytes, std::uint16_t value) {
    bytes.push_back(static_cast<std::uint8_t>(value >> 8));
    bytes.push_back(static_cast<std::uint8_t>(value & 0xff));
}

void put_address(Bytes& bytes, const IpAddress& address) {
    const std::size_t size = address.version == IpVersion::v4 ? 4 : 16;
    bytes.insert(bytes.end(), address.bytes.begin(), address.bytes.begin() + size);
}

// An IP packet around `transport` bytes, with a valid IPv4 header checksum; the transport
// checksum is left as the caller wrote it (the code under test only parses these).
Bytes ip_packet(const IpAddress& source, const IpAddress& destination, std::uint8_t protocol, const Bytes& transport) {
    Bytes packet;
    if (source.version == IpVersion::v4) {
        packet = {0x45, 0};
        put_u16(packet, static_cast<std::uint16_t>(20 + transport.size()));
        put_u16(packet, 0x1234);
        put_u16(packet, 0x4000);
        packet.push_back(64);
        packet.push_back(protocol);
        put_u16(packet, 0);
        put_address(packet, source);
        put_address(packet, destination);
        const std::uint16_t checksum = internet_checksum(packet);
        packet[10] = static_cast<std::uint8_t>(checksum >> 8);
        packet[11] = static_cast<std::uint8_t>(checksum & 0xff);
    } else {
        packet = {0x60, 0, 0, 0};
        put_u16(packet, static_cast<std::uint16_t>(transport.size()));
        packet.push_back(protocol);
        packet.push_back(64);
        put_address(packet, source);
        put_address(packet, destination);
    }
    packet.insert(packet.end(), transport.begin(), transport.end());
    return packet;
}

Bytes tcp_segment(const Endpoint& source, const Endpoint& destination, std::uint8_t flags, std::uint32_t sequence,
                  std::uint32_t acknowledgement, std::size_t payload_size) {
    Bytes tcp;
    put_u16(tcp, source.port);
    put_u16(tcp, destination.port);
    put_u16(tcp, static_cast<std::uint16_t>(sequence >> 16));
    put_u16(tcp, static_cast<std::uint16_t>(sequence & 0xffff));
    put_u16(tcp, static_cast<std::uint16_t>(acknowledgement >> 16));
    put_u16(tcp, static_cast<std::uint16_t>(acknowledgement & 0xffff));
    tcp.push_back(5 << 4);
    tcp.push_back(flags);
    put_u16(tcp, 64240);
    put_u16(tcp, 0);
    put_u16(tcp, 0);
    for (std::size_t i = 0; i < payload_size; ++i) tcp.push_back(static_cast<std::uint8_t>(i * 7 + 1));
    return ip_packet(source.address, destination.address, ip_protocol::tcp, tcp);
}

Bytes payload_of_size(std::size_t size) {
    Bytes payload(size);
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<std::uint8_t>(i * 37 + 5);
    return payload;
}

// The ICMP message of an ICMP (IPv4) or ICMPv6 packet; for ICMPv6, preceded by its pseudo-header
// (RFC 8200 §8.1), written out apart from the code under test.
Bytes checksummed_icmp_bytes(const Bytes& packet, const PacketView& view) {
    Bytes summed;
    if (view.version == IpVersion::v6) {
        put_address(summed, view.source.address);
        put_address(summed, view.destination.address);
        const std::size_t length = view.total_length - view.ip_header_length;
        summed.insert(summed.end(), {0, 0});
        put_u16(summed, static_cast<std::uint16_t>(length));
        summed.insert(summed.end(), {0, 0, 0, ip_protocol::icmpv6});
    }
    summed.insert(summed.end(), packet.begin() + static_cast<std::ptrdiff_t>(view.ip_header_length),
                  packet.begin() + static_cast<std::ptrdiff_t>(view.total_length));
    return summed;
}

const Endpoint app_v4 = endpoint("10.200.3.1", 51000);
const Endpoint far_v4 = endpoint("93.184.216.34", 443);
const Endpoint app_v6 = endpoint("fd42:42:42::1", 40000);
const Endpoint far_v6 = endpoint("2001:db8::7", 8443);

// ---- TCP reset

struct ResetCase {
    Endpoint application, far_end;
};

const ResetCase reset_cases[] = {{app_v4, far_v4}, {app_v6, far_v6}};

TEST(PacketBuilderReset, AnswersASynWithRstAckAndSequenceZero) {
    for (const auto& [application, far_end] : reset_cases) {
        SCOPED_TRACE(application.address.text());
        const Bytes syn = tcp_segment(application, far_end, tcp_flag::syn, 0x11223344, 0, 0);
        const Bytes reset = build_tcp_reset(parsed(syn));
        const PacketView view = parsed(reset);
        EXPECT_EQ(view.protocol, ip_protocol::tcp);
        EXPECT_EQ(view.tcp_flags, tcp_flag::rst | tcp_flag::ack);
        EXPECT_EQ(view.tcp_sequence, 0u);
        EXPECT_EQ(view.tcp_acknowledgement, 0x11223345u);
        EXPECT_EQ(view.source, far_end);
        EXPECT_EQ(view.destination, application);
        EXPECT_EQ(view.payload_length, 0u);
        EXPECT_EQ(view.total_length, reset.size());
        EXPECT_TRUE(has_valid_checksums(reset, view));
    }
}

TEST(PacketBuilderReset, AnswersASegmentWithAckWithRstAtItsAcknowledgement) {
    for (const auto& [application, far_end] : reset_cases) {
        SCOPED_TRACE(application.address.text());
        const Bytes segment = tcp_segment(application, far_end, tcp_flag::ack | tcp_flag::psh, 1000, 0xcafef00d, 100);
        const Bytes reset = build_tcp_reset(parsed(segment));
        const PacketView view = parsed(reset);
        EXPECT_EQ(view.tcp_flags, tcp_flag::rst);
        EXPECT_EQ(view.tcp_sequence, 0xcafef00du);
        EXPECT_EQ(view.tcp_acknowledgement, 0u);  // no ACK flag: the field is not used
        EXPECT_EQ(view.source, far_end);
        EXPECT_EQ(view.destination, application);
        EXPECT_TRUE(has_valid_checksums(reset, view));

        // A SYN-ACK carries an ACK too: the reset is at its acknowledgement, without ACK.
        const Bytes syn_ack = tcp_segment(application, far_end, tcp_flag::syn | tcp_flag::ack, 5, 77, 0);
        const PacketView answer = parsed(build_tcp_reset(parsed(syn_ack)));
        EXPECT_EQ(answer.tcp_flags, tcp_flag::rst);
        EXPECT_EQ(answer.tcp_sequence, 77u);
    }
}

TEST(PacketBuilderReset, AcknowledgesDataAndFinOfASegmentWithoutAck) {
    for (const auto& [application, far_end] : reset_cases) {
        SCOPED_TRACE(application.address.text());
        const Bytes data = tcp_segment(application, far_end, tcp_flag::psh, 5000, 0, 123);
        EXPECT_EQ(parsed(build_tcp_reset(parsed(data))).tcp_acknowledgement, 5123u);

        const Bytes fin = tcp_segment(application, far_end, tcp_flag::fin, 5000, 0, 10);
        EXPECT_EQ(parsed(build_tcp_reset(parsed(fin))).tcp_acknowledgement, 5011u);

        const Bytes everything = tcp_segment(application, far_end, tcp_flag::syn | tcp_flag::fin, 5000, 0, 3);
        const PacketView view = parsed(build_tcp_reset(parsed(everything)));
        EXPECT_EQ(view.tcp_acknowledgement, 5005u);  // SYN + 3 bytes + FIN
        EXPECT_EQ(view.tcp_flags, tcp_flag::rst | tcp_flag::ack);
    }
}

TEST(PacketBuilderReset, TheAcknowledgementWrapsAroundTheSequenceSpace) {
    const Bytes syn = tcp_segment(app_v4, far_v4, tcp_flag::syn, 0xffffffff, 0, 0);
    EXPECT_EQ(parsed(build_tcp_reset(parsed(syn))).tcp_acknowledgement, 0u);
    const Bytes data = tcp_segment(app_v4, far_v4, 0, 0xfffffffe, 0, 5);
    EXPECT_EQ(parsed(build_tcp_reset(parsed(data))).tcp_acknowledgement, 3u);
}

TEST(PacketBuilderReset, HasAValidIpv4HeaderAndChecksumsWhateverTheAddresses) {
    for (const auto& [application, far_end] :
         {ResetCase{endpoint("0.0.0.0", 0), endpoint("255.255.255.255", 65535)},
          ResetCase{endpoint("::", 0), endpoint("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535)}}) {
        const Bytes syn = tcp_segment(application, far_end, tcp_flag::syn, 1, 0, 0);
        const Bytes reset = build_tcp_reset(parsed(syn));
        const PacketView view = parsed(reset);
        EXPECT_TRUE(has_valid_checksums(reset, view)) << application.address.text();
        EXPECT_EQ(view.source, far_end);
        EXPECT_EQ(view.destination, application);
    }
}

// ---- UDP

TEST(PacketBuilderUdp, ParsesBackToTheEndpointsAndPayload) {
    for (const auto& [source, destination] : {std::pair{far_v4, app_v4}, std::pair{far_v6, app_v6}}) {
        for (const std::size_t size : {0u, 1u, 2u, 3u, 512u, 1400u}) {
            SCOPED_TRACE(source.address.text() + " payload " + std::to_string(size));
            const Bytes payload = payload_of_size(size);
            const Bytes packet = build_udp(source, destination, payload);
            const PacketView view = parsed(packet);
            EXPECT_EQ(view.version, source.address.version);
            EXPECT_EQ(view.protocol, ip_protocol::udp);
            EXPECT_EQ(view.source, source);
            EXPECT_EQ(view.destination, destination);
            EXPECT_EQ(view.total_length, packet.size());
            ASSERT_EQ(view.payload_length, size);
            EXPECT_EQ(Bytes(packet.end() - static_cast<std::ptrdiff_t>(size), packet.end()), payload);
            EXPECT_TRUE(has_valid_checksums(packet, view));
            EXPECT_NE(get_u16(packet, view.ip_header_length + 6), 0);  // always a checksum
        }
    }
}

TEST(PacketBuilderUdp, AChecksumThatComesOutZeroIsSentAsFfff) {
    for (const auto& [source, destination] : {std::pair{far_v4, app_v4}, std::pair{far_v6, app_v6}}) {
        SCOPED_TRACE(source.address.text());
        // The checksum of the packet with a zero first payload word, put into that word, makes
        // the one's-complement sum all ones: a computed checksum of zero.
        Bytes payload = {0, 0, 0x42, 0x17, 0x99};
        const Bytes first = build_udp(source, destination, payload);
        const std::size_t checksum_offset = parsed(first).ip_header_length + 6;
        const std::uint16_t checksum = get_u16(first, checksum_offset);
        ASSERT_NE(checksum, 0xffff);
        payload[0] = static_cast<std::uint8_t>(checksum >> 8);
        payload[1] = static_cast<std::uint8_t>(checksum & 0xff);

        const Bytes packet = build_udp(source, destination, payload);
        EXPECT_EQ(get_u16(packet, checksum_offset), 0xffff);
        EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
    }
}

TEST(PacketBuilderUdp, RefusesMixedFamilies) {
    EXPECT_ANY_THROW(build_udp(far_v4, app_v6, Bytes{1, 2, 3}));
}

// ---- ICMP unreachable

struct UnreachableCase {
    Unreachable reason;
    std::uint8_t v4_code, v6_code;
};

const UnreachableCase unreachable_cases[] = {
    {Unreachable::network, 0, 0},
    {Unreachable::host, 1, 3},
    {Unreachable::port, 3, 4},
    {Unreachable::administratively_prohibited, 13, 1},
};

TEST(PacketBuilderUnreachable, Ipv4TypeThreeWithTheReasonsCode) {
    const Bytes original = build_udp(app_v4, far_v4, payload_of_size(30));
    const PacketView original_view = parsed(original);
    for (const auto& [reason, v4_code, v6_code] : unreachable_cases) {
        SCOPED_TRACE(int(v4_code));
        const Bytes error = build_unreachable(original, original_view, reason);
        const PacketView view = parsed(error);
        EXPECT_EQ(view.version, IpVersion::v4);
        EXPECT_EQ(view.protocol, ip_protocol::icmp);
        EXPECT_EQ(view.source.address, far_v4.address);
        EXPECT_EQ(view.destination.address, app_v4.address);
        EXPECT_TRUE(has_valid_checksums(error, view));  // the IPv4 header
        ASSERT_EQ(error.size(), 20u + 8u + original.size());
        EXPECT_EQ(error[20], 3);
        EXPECT_EQ(error[21], v4_code);
        EXPECT_EQ(get_u16(error, 24), 0);  // unused
        EXPECT_EQ(get_u16(error, 26), 0);
        EXPECT_EQ(Bytes(error.begin() + 28, error.end()), original);
        EXPECT_EQ(internet_checksum(checksummed_icmp_bytes(error, view)), 0);
    }
}

TEST(PacketBuilderUnreachable, Ipv6TypeOneWithTheReasonsCode) {
    const Bytes original = tcp_segment(app_v6, far_v6, tcp_flag::syn, 9, 0, 0);
    const PacketView original_view = parsed(original);
    for (const auto& [reason, v4_code, v6_code] : unreachable_cases) {
        SCOPED_TRACE(int(v6_code));
        const Bytes error = build_unreachable(original, original_view, reason);
        const PacketView view = parsed(error);
        EXPECT_EQ(view.version, IpVersion::v6);
        EXPECT_EQ(view.protocol, ip_protocol::icmpv6);
        EXPECT_EQ(view.source.address, far_v6.address);
        EXPECT_EQ(view.destination.address, app_v6.address);
        ASSERT_EQ(error.size(), 40u + 8u + original.size());
        EXPECT_EQ(error[40], 1);
        EXPECT_EQ(error[41], v6_code);
        EXPECT_EQ(get_u16(error, 44), 0);
        EXPECT_EQ(get_u16(error, 46), 0);
        EXPECT_EQ(Bytes(error.begin() + 48, error.end()), original);
        EXPECT_EQ(internet_checksum(checksummed_icmp_bytes(error, view)), 0);
    }
}

TEST(PacketBuilderUnreachable, TheChecksumCoversTheIcmpv6PseudoHeader) {
    const Bytes original = build_udp(app_v6, far_v6, payload_of_size(21));
    const Bytes error = build_unreachable(original, parsed(original), Unreachable::port);
    const PacketView view = parsed(error);
    // Without the pseudo-header the sum does not hold: the checksum is not ICMPv4's.
    const Bytes message(error.begin() + 40, error.end());
    EXPECT_NE(internet_checksum(message), 0);
    EXPECT_EQ(internet_checksum(checksummed_icmp_bytes(error, view)), 0);
}

TEST(PacketBuilderUnreachable, QuotesNoMoreThan576BytesInAllOverIpv4) {
    const Bytes original = build_udp(app_v4, far_v4, payload_of_size(1400));
    const Bytes error = build_unreachable(original, parsed(original), Unreachable::port);
    const PacketView view = parsed(error);
    EXPECT_EQ(error.size(), 576u);
    EXPECT_EQ(view.total_length, 576u);
    EXPECT_EQ(Bytes(error.begin() + 28, error.end()), Bytes(original.begin(), original.begin() + 548));
    EXPECT_TRUE(has_valid_checksums(error, view));
    EXPECT_EQ(internet_checksum(checksummed_icmp_bytes(error, view)), 0);

    // One byte under the limit is quoted whole.
    const Bytes fits = build_udp(app_v4, far_v4, payload_of_size(548 - 28));
    ASSERT_EQ(fits.size(), 548u);
    EXPECT_EQ(build_unreachable(fits, parsed(fits), Unreachable::port).size(), 576u);
}

TEST(PacketBuilderUnreachable, QuotesNoMoreThan1280BytesInAllOverIpv6) {
    const Bytes original = build_udp(app_v6, far_v6, payload_of_size(1400));
    const Bytes error = build_unreachable(original, parsed(original), Unreachable::administratively_prohibited);
    const PacketView view = parsed(error);
    EXPECT_EQ(error.size(), 1280u);
    EXPECT_EQ(view.total_length, 1280u);
    EXPECT_EQ(Bytes(error.begin() + 48, error.end()), Bytes(original.begin(), original.begin() + 1232));
    EXPECT_EQ(internet_checksum(checksummed_icmp_bytes(error, view)), 0);
}

TEST(PacketBuilderUnreachable, QuotesOnlyThePacketNotBytesAfterItsTotalLength) {
    Bytes original = build_udp(app_v4, far_v4, payload_of_size(10));
    const std::size_t packet_size = original.size();
    const PacketView original_view = parsed(original);
    original.insert(original.end(), 20, 0xee);  // link-layer padding
    const Bytes error = build_unreachable(original, original_view, Unreachable::host);
    EXPECT_EQ(error.size(), 28u + packet_size);
    EXPECT_EQ(Bytes(error.begin() + 28, error.end()), Bytes(original.begin(), original.begin() + packet_size));
}

// ---- when an ICMP error may be sent

Bytes icmp_packet(const Endpoint& source, const Endpoint& destination, std::uint8_t type, std::uint8_t code = 0) {
    const bool is_v4 = source.address.version == IpVersion::v4;
    const Bytes message = {type, code, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
    return ip_packet(source.address, destination.address, is_v4 ? ip_protocol::icmp : ip_protocol::icmpv6, message);
}

bool may_answer(const Bytes& packet) { return may_answer_with_icmp_error(packet, parsed(packet)); }

TEST(PacketBuilderMayAnswer, TcpUdpAndEchoRequestsToUnicastAddresses) {
    EXPECT_TRUE(may_answer(tcp_segment(app_v4, far_v4, tcp_flag::syn, 1, 0, 0)));
    EXPECT_TRUE(may_answer(tcp_segment(app_v6, far_v6, tcp_flag::syn, 1, 0, 0)));
    EXPECT_TRUE(may_answer(build_udp(app_v4, far_v4, Bytes{1, 2})));
    EXPECT_TRUE(may_answer(build_udp(app_v6, far_v6, Bytes{1, 2})));
    EXPECT_TRUE(may_answer(icmp_packet(app_v4, far_v4, 8)));    // echo request
    EXPECT_TRUE(may_answer(icmp_packet(app_v6, far_v6, 128)));  // echo request
}

TEST(PacketBuilderMayAnswer, NeverAboutAnIcmpError) {
    for (const std::uint8_t type : {3, 4, 5, 11, 12})
        EXPECT_FALSE(may_answer(icmp_packet(app_v4, far_v4, type))) << "ICMP type " << int(type);
    for (const std::uint8_t type : {1, 2, 3, 4})
        EXPECT_FALSE(may_answer(icmp_packet(app_v6, far_v6, type))) << "ICMPv6 type " << int(type);
    // Nor about our own unreachable, were it to come back.
    const Bytes syn = tcp_segment(app_v4, far_v4, tcp_flag::syn, 1, 0, 0);
    EXPECT_FALSE(may_answer(build_unreachable(syn, parsed(syn), Unreachable::port)));
}

TEST(PacketBuilderMayAnswer, NeverAboutEchoRepliesOrNeighbourDiscovery) {
    EXPECT_FALSE(may_answer(icmp_packet(app_v4, far_v4, 0)));     // echo reply
    EXPECT_FALSE(may_answer(icmp_packet(app_v6, far_v6, 129)));   // echo reply
    for (const std::uint8_t type : {130, 131, 132, 133, 134, 135, 136, 137, 143})
        EXPECT_FALSE(may_answer(icmp_packet(app_v6, far_v6, type))) << "ICMPv6 type " << int(type);
}

TEST(PacketBuilderMayAnswer, NeverAboutMulticastOrBroadcastDestinations) {
    for (const char* address : {"224.0.0.1", "239.255.255.250", "255.255.255.255"}) {
        EXPECT_FALSE(may_answer(build_udp(app_v4, endpoint(address, 1900), Bytes{1}))) << address;
        EXPECT_FALSE(may_answer(tcp_segment(app_v4, endpoint(address, 80), tcp_flag::syn, 1, 0, 0))) << address;
        EXPECT_FALSE(may_answer(icmp_packet(app_v4, endpoint(address, 0), 8))) << address;
    }
    for (const char* address : {"ff02::1", "ff02::fb", "ff05::1:3"}) {
        EXPECT_FALSE(may_answer(build_udp(app_v6, endpoint(address, 5353), Bytes{1}))) << address;
        EXPECT_FALSE(may_answer(icmp_packet(app_v6, endpoint(address, 0), 128))) << address;
    }
    EXPECT_TRUE(may_answer(build_udp(app_v4, endpoint("223.255.255.255", 53), Bytes{1})));
}

TEST(PacketBuilderMayAnswer, NotAboutAnIcmpPacketWithoutAType) {
    const Bytes empty = ip_packet(app_v4.address, far_v4.address, ip_protocol::icmp, {});
    EXPECT_FALSE(may_answer(empty));
}

}  // namespace
}  // namespace psi::packet
