#include "packet/packet.hpp"

#include <arpa/inet.h>

#include <cstdint>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "packet/ip_address.hpp"

namespace psi::packet {
namespace {

using Bytes = std::vector<std::uint8_t>;

Endpoint endpoint(const std::string& address, std::uint16_t port) { return {parse_ip_address(address, "test"), port}; }

// The checksum of the test packets, written out plainly and apart from the code under test.
std::uint16_t reference_checksum(const Bytes& bytes) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < bytes.size(); i += 2)
        sum += static_cast<std::uint32_t>(bytes[i] << 8 | (i + 1 < bytes.size() ? bytes[i + 1] : 0));
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

void put_u16(Bytes& bytes, std::uint16_t value) {
    bytes.push_back(static_cast<std::uint8_t>(value >> 8));
    bytes.push_back(static_cast<std::uint8_t>(value & 0xff));
}

void put_u32(Bytes& bytes, std::uint32_t value) {
    put_u16(bytes, static_cast<std::uint16_t>(value >> 16));
    put_u16(bytes, static_cast<std::uint16_t>(value & 0xffff));
}

void put_address(Bytes& bytes, const IpAddress& address) {
    const std::size_t size = address.version == IpVersion::v4 ? 4 : 16;
    bytes.insert(bytes.end(), address.bytes.begin(), address.bytes.begin() + size);
}

void set_u16(Bytes& bytes, std::size_t offset, std::uint16_t value) {
    bytes.at(offset) = static_cast<std::uint8_t>(value >> 8);
    bytes.at(offset + 1) = static_cast<std::uint8_t>(value & 0xff);
}

std::uint16_t get_u16(const Bytes& bytes, std::size_t offset) {
    return static_cast<std::uint16_t>(bytes.at(offset) << 8 | bytes.at(offset + 1));
}

// What a test packet holds; build_packet() lays it out with every checksum computed in full.
struct PacketSpec {
    IpVersion version = IpVersion::v4;
    std::uint8_t protocol = ip_protocol::tcp;
    Endpoint source = endpoint("10.200.3.1", 51000);
    Endpoint destination = endpoint("93.184.216.34", 443);
    Bytes payload;
    std::uint8_t tcp_flags = tcp_flag::syn;
    std::uint32_t tcp_sequence = 0x01020304;
    std::uint32_t tcp_acknowledgement = 0;
    std::size_t ipv4_option_words = 0;
    std::size_t tcp_option_words = 0;
    std::uint16_t identification = 0x1c46;
    bool has_udp_checksum = true;  // IPv4 only
};

Bytes build_packet(const PacketSpec& spec) {
    const bool is_v4 = spec.version == IpVersion::v4;
    Bytes segment;
    std::size_t checksum_offset = 0;
    if (spec.protocol == ip_protocol::tcp) {
        put_u16(segment, spec.source.port);
        put_u16(segment, spec.destination.port);
        put_u32(segment, spec.tcp_sequence);
        put_u32(segment, spec.tcp_acknowledgement);
        segment.push_back(static_cast<std::uint8_t>((5 + spec.tcp_option_words) << 4));
        segment.push_back(spec.tcp_flags);
        put_u16(segment, 64240);  // window
        put_u16(segment, 0);      // checksum
        put_u16(segment, 0);      // urgent pointer
        segment.insert(segment.end(), spec.tcp_option_words * 4, 0x01);  // NOPs
        checksum_offset = 16;
    } else if (spec.protocol == ip_protocol::udp) {
        put_u16(segment, spec.source.port);
        put_u16(segment, spec.destination.port);
        put_u16(segment, static_cast<std::uint16_t>(8 + spec.payload.size()));
        put_u16(segment, 0);
        checksum_offset = 6;
    } else {  // ICMP or ICMPv6 echo request
        segment = {static_cast<std::uint8_t>(is_v4 ? 8 : 128), 0, 0, 0, 0x12, 0x34, 0, 1};
        checksum_offset = 2;
    }
    segment.insert(segment.end(), spec.payload.begin(), spec.payload.end());

    Bytes summed;  // the pseudo-header, then the segment
    if (spec.protocol != ip_protocol::icmp) {
        put_address(summed, spec.source.address);
        put_address(summed, spec.destination.address);
        if (is_v4) {
            summed.push_back(0);
            summed.push_back(spec.protocol);
            put_u16(summed, static_cast<std::uint16_t>(segment.size()));
        } else {
            put_u32(summed, static_cast<std::uint32_t>(segment.size()));
            summed.insert(summed.end(), {0, 0, 0, spec.protocol});
        }
    }
    summed.insert(summed.end(), segment.begin(), segment.end());
    std::uint16_t checksum = reference_checksum(summed);
    if (spec.protocol == ip_protocol::udp) {
        if (checksum == 0) checksum = 0xffff;
        if (is_v4 && !spec.has_udp_checksum) checksum = 0;
    }
    set_u16(segment, checksum_offset, checksum);

    Bytes packet;
    if (is_v4) {
        const std::size_t header_length = 20 + spec.ipv4_option_words * 4;
        packet.push_back(static_cast<std::uint8_t>(0x40 | header_length / 4));
        packet.push_back(0);
        put_u16(packet, static_cast<std::uint16_t>(header_length + segment.size()));
        put_u16(packet, spec.identification);
        put_u16(packet, 0x4000);  // don't fragment
        packet.push_back(64);
        packet.push_back(spec.protocol);
        put_u16(packet, 0);
        put_address(packet, spec.source.address);
        put_address(packet, spec.destination.address);
        packet.insert(packet.end(), spec.ipv4_option_words * 4, 0x01);  // NOPs
        set_u16(packet, 10, reference_checksum(packet));
    } else {
        put_u32(packet, 0x60012345);  // version 6, flow label 0x12345
        put_u16(packet, static_cast<std::uint16_t>(segment.size()));
        packet.push_back(spec.protocol);
        packet.push_back(64);
        put_address(packet, spec.source.address);
        put_address(packet, spec.destination.address);
    }
    packet.insert(packet.end(), segment.begin(), segment.end());
    return packet;
}

Bytes payload_of_size(std::size_t size, unsigned seed = 0) {
    Bytes payload(size);
    for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<std::uint8_t>(i * 37 + seed * 101 + 5);
    return payload;
}

// A TCP or UDP packet of the family, with addresses of that family and a payload of `size`.
PacketSpec spec_for(IpVersion version, std::uint8_t protocol, std::size_t size) {
    PacketSpec spec;
    spec.version = version;
    spec.protocol = protocol;
    if (version == IpVersion::v6) {
        spec.source = endpoint("fd42:42:42::1", 1000);
        spec.destination = endpoint("2001:db8::1", 80);
    }
    spec.payload = payload_of_size(size);
    return spec;
}

PacketView parsed(const Bytes& packet) {
    const auto result = parse_packet(packet);
    if (const auto* error = std::get_if<PacketError>(&result))
        throw std::runtime_error(std::string("did not parse: ") + packet_error_name(*error));
    return std::get<PacketView>(result);
}

PacketError error_of(const Bytes& packet) {
    const auto result = parse_packet(packet);
    if (!std::holds_alternative<PacketError>(result)) throw std::runtime_error("parsed");
    return std::get<PacketError>(result);
}

std::size_t transport_offset(const Bytes& packet) { return parsed(packet).ip_header_length; }

// ---- parsing

TEST(PacketParse, ReadsAnIpv4TcpSyn) {
    PacketSpec spec;
    spec.tcp_sequence = 0xdeadbeef;
    spec.tcp_acknowledgement = 0x11223344;
    spec.tcp_flags = tcp_flag::syn | tcp_flag::ack;
    const Bytes packet = build_packet(spec);
    const PacketView view = parsed(packet);
    EXPECT_EQ(view.version, IpVersion::v4);
    EXPECT_EQ(view.protocol, ip_protocol::tcp);
    EXPECT_EQ(view.ip_header_length, 20u);
    EXPECT_EQ(view.total_length, 40u);
    EXPECT_EQ(view.source, spec.source);
    EXPECT_EQ(view.destination, spec.destination);
    EXPECT_EQ(view.source.address.text(), "10.200.3.1");
    EXPECT_EQ(view.destination.address.text(), "93.184.216.34");
    EXPECT_EQ(view.source.port, 51000);
    EXPECT_EQ(view.destination.port, 443);
    EXPECT_EQ(view.tcp_flags, tcp_flag::syn | tcp_flag::ack);
    EXPECT_EQ(view.tcp_sequence, 0xdeadbeefu);
    EXPECT_EQ(view.tcp_acknowledgement, 0x11223344u);
    EXPECT_EQ(view.payload_length, 0u);
}

TEST(PacketParse, IpAndTcpOptionsAreNotPayload) {
    PacketSpec spec;
    spec.ipv4_option_words = 3;
    spec.tcp_option_words = 10;  // the largest: data offset 15
    spec.payload = payload_of_size(17);
    const PacketView view = parsed(build_packet(spec));
    EXPECT_EQ(view.ip_header_length, 32u);
    EXPECT_EQ(view.total_length, 32u + 60u + 17u);
    EXPECT_EQ(view.payload_length, 17u);
    EXPECT_EQ(view.destination.port, 443);
}

TEST(PacketParse, ReadsAnIpv6UdpDatagram) {
    PacketSpec spec;
    spec.version = IpVersion::v6;
    spec.protocol = ip_protocol::udp;
    spec.source = endpoint("fd42:42:42::1", 40000);
    spec.destination = endpoint("2001:4860:4860::8888", 53);
    spec.payload = payload_of_size(29);
    const PacketView view = parsed(build_packet(spec));
    EXPECT_EQ(view.version, IpVersion::v6);
    EXPECT_EQ(view.protocol, ip_protocol::udp);
    EXPECT_EQ(view.ip_header_length, 40u);
    EXPECT_EQ(view.total_length, 40u + 8u + 29u);
    EXPECT_EQ(view.source.address.text(), "fd42:42:42::1");
    EXPECT_EQ(view.destination.address.text(), "2001:4860:4860::8888");
    EXPECT_EQ(view.source.port, 40000);
    EXPECT_EQ(view.destination.port, 53);
    EXPECT_EQ(view.tcp_flags, 0);
    EXPECT_EQ(view.payload_length, 29u);
}

TEST(PacketParse, IcmpAndIcmpv6HaveNoPorts) {
    PacketSpec spec;
    spec.protocol = ip_protocol::icmp;
    spec.payload = payload_of_size(56);
    const PacketView v4 = parsed(build_packet(spec));
    EXPECT_EQ(v4.protocol, ip_protocol::icmp);
    EXPECT_EQ(v4.source.port, 0);
    EXPECT_EQ(v4.destination.port, 0);
    EXPECT_EQ(v4.payload_length, 8u + 56u);  // no transport header: the whole ICMP message

    spec.version = IpVersion::v6;
    spec.protocol = ip_protocol::icmpv6;
    spec.source = endpoint("fd42:42:42::1", 0);
    spec.destination = endpoint("::1", 0);
    const PacketView v6 = parsed(build_packet(spec));
    EXPECT_EQ(v6.protocol, ip_protocol::icmpv6);
    EXPECT_EQ(v6.source.port, 0);
    EXPECT_EQ(v6.destination.port, 0);
    EXPECT_EQ(v6.payload_length, 8u + 56u);
}

TEST(PacketParse, BytesAfterTheTotalLengthAreNotPartOfThePacket) {
    PacketSpec spec;
    spec.payload = payload_of_size(5);
    Bytes packet = build_packet(spec);
    packet.insert(packet.end(), 11, 0xee);  // link-layer padding
    const PacketView view = parsed(packet);
    EXPECT_EQ(view.total_length, packet.size() - 11);
    EXPECT_EQ(view.payload_length, 5u);
    EXPECT_TRUE(has_valid_checksums(packet, view));

    spec.version = IpVersion::v6;
    spec.protocol = ip_protocol::udp;
    spec.source = endpoint("fd42:42:42::1", 1);
    spec.destination = endpoint("fd42:42:42::2", 2);
    packet = build_packet(spec);
    packet.insert(packet.end(), 3, 0xee);
    EXPECT_EQ(parsed(packet).payload_length, 5u);
    EXPECT_EQ(parsed(packet).total_length, packet.size() - 3);
}

TEST(PacketParse, AddressesPrintAsText) {
    EXPECT_EQ(endpoint("0.0.0.0", 0).address.text(), "0.0.0.0");
    EXPECT_EQ(endpoint("255.255.255.255", 0).address.text(), "255.255.255.255");
    EXPECT_EQ(endpoint("fd42:42:42::2", 0).address.text(), "fd42:42:42::2");
    EXPECT_EQ(endpoint("::ffff:10.0.0.1", 0).address.text(), "::ffff:10.0.0.1");
    EXPECT_EQ(IpAddress{}.text(), "0.0.0.0");
}

TEST(PacketParse, EmptyAndShortPacketsAreTruncated) {
    EXPECT_EQ(error_of({}), PacketError::truncated);
    EXPECT_EQ(error_of({0x45}), PacketError::truncated);
    EXPECT_EQ(error_of(Bytes(19, 0x45)), PacketError::truncated);
    Bytes v6(39, 0);
    v6[0] = 0x60;
    EXPECT_EQ(error_of(v6), PacketError::truncated);
}

TEST(PacketParse, EveryProperPrefixIsTruncated) {
    for (const IpVersion version : {IpVersion::v4, IpVersion::v6}) {
        for (const std::uint8_t protocol : {ip_protocol::tcp, ip_protocol::udp}) {
            PacketSpec spec = spec_for(version, protocol, 9);
            const Bytes packet = build_packet(spec);
            for (std::size_t size = 0; size < packet.size(); ++size) {
                SCOPED_TRACE(size);
                EXPECT_EQ(error_of(Bytes(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(size))),
                          PacketError::truncated);
            }
        }
    }
}

TEST(PacketParse, RefusesOtherIpVersions) {
    Bytes packet = build_packet(PacketSpec{});
    for (const std::uint8_t version : {0, 1, 5, 7, 15}) {
        packet[0] = static_cast<std::uint8_t>(version << 4 | 5);
        EXPECT_EQ(error_of(packet), PacketError::bad_version) << int(version);
    }
}

TEST(PacketParse, RefusesAnIpv4HeaderLengthBelowFiveOrBeyondThePacket) {
    Bytes packet = build_packet(PacketSpec{});  // 40 bytes
    for (const std::uint8_t words : {0, 1, 4}) {
        packet[0] = static_cast<std::uint8_t>(0x40 | words);
        EXPECT_EQ(error_of(packet), PacketError::bad_header_length) << int(words);
    }
    packet[0] = 0x4f;  // 60 bytes of header in a 40-byte packet
    EXPECT_EQ(error_of(packet), PacketError::bad_header_length);
    packet[0] = 0x47;  // 28 bytes: fits the buffer, but a total length of 24 does not hold it
    set_u16(packet, 2, 24);
    EXPECT_EQ(error_of(packet), PacketError::bad_header_length);
}

TEST(PacketParse, RefusesAnIpv4TotalLengthBeyondTheBufferOrBelowTheHeader) {
    Bytes packet = build_packet(PacketSpec{});
    set_u16(packet, 2, 41);
    EXPECT_EQ(error_of(packet), PacketError::truncated);
    set_u16(packet, 2, 0xffff);
    EXPECT_EQ(error_of(packet), PacketError::truncated);
    set_u16(packet, 2, 19);
    EXPECT_EQ(error_of(packet), PacketError::bad_header_length);
    set_u16(packet, 2, 0);
    EXPECT_EQ(error_of(packet), PacketError::bad_header_length);
}

TEST(PacketParse, RefusesIpv4Fragments) {
    Bytes packet = build_packet(PacketSpec{});
    set_u16(packet, 6, 0x2000);  // more fragments
    EXPECT_EQ(error_of(packet), PacketError::fragment);
    set_u16(packet, 6, 0x0001);  // offset 8
    EXPECT_EQ(error_of(packet), PacketError::fragment);
    set_u16(packet, 6, 0x5fff);  // don't fragment with an offset: still a fragment
    EXPECT_EQ(error_of(packet), PacketError::fragment);
    set_u16(packet, 6, 0x4000);  // don't fragment alone
    EXPECT_NO_THROW(parsed(packet));
    set_u16(packet, 6, 0x0000);
    EXPECT_NO_THROW(parsed(packet));
}

TEST(PacketParse, RefusesAnIpv6PayloadLengthBeyondTheBuffer) {
    PacketSpec spec;
    spec.version = IpVersion::v6;
    spec.source = endpoint("fd42:42:42::1", 1000);
    spec.destination = endpoint("2001:db8::1", 80);
    Bytes packet = build_packet(spec);
    set_u16(packet, 4, static_cast<std::uint16_t>(packet.size() - 40 + 1));
    EXPECT_EQ(error_of(packet), PacketError::truncated);
    set_u16(packet, 4, 0);  // no room for a TCP header any more
    EXPECT_EQ(error_of(packet), PacketError::truncated);
}

TEST(PacketParse, RefusesIpv6ExtensionHeaders) {
    PacketSpec spec;
    spec.version = IpVersion::v6;
    spec.source = endpoint("fd42:42:42::1", 1000);
    spec.destination = endpoint("2001:db8::1", 80);
    Bytes packet = build_packet(spec);
    for (const std::uint8_t next_header : {0, 43, 44, 50, 51, 60, 59, 1}) {
        packet[6] = next_header;
        EXPECT_EQ(error_of(packet), PacketError::extension_headers) << int(next_header);
    }
}

TEST(PacketParse, RefusesATcpDataOffsetBelowFiveOrBeyondThePacket) {
    PacketSpec spec;
    spec.payload = payload_of_size(8);
    Bytes packet = build_packet(spec);  // 20 + 20 + 8
    packet[20 + 12] = 4 << 4;
    EXPECT_EQ(error_of(packet), PacketError::bad_transport_header);
    packet[20 + 12] = 0;
    EXPECT_EQ(error_of(packet), PacketError::bad_transport_header);
    packet[20 + 12] = 7 << 4;  // 28 bytes: the options take the payload
    EXPECT_EQ(parsed(packet).payload_length, 0u);
    packet[20 + 12] = 8 << 4;  // 32 bytes in a 28-byte segment
    EXPECT_EQ(error_of(packet), PacketError::bad_transport_header);
    // The data offset counts against the total length, not against bytes beyond it.
    packet[20 + 12] = 7 << 4;
    packet.insert(packet.end(), 40, 0);
    set_u16(packet, 2, 20 + 27);
    EXPECT_EQ(error_of(packet), PacketError::bad_transport_header);
}

TEST(PacketParse, RefusesAUdpLengthThatDisagreesWithTheIpPayload) {
    PacketSpec spec;
    spec.protocol = ip_protocol::udp;
    spec.payload = payload_of_size(10);
    Bytes packet = build_packet(spec);
    for (const std::uint16_t length : {0, 7, 8, 17, 19, 0xffff}) {
        set_u16(packet, 20 + 4, length);
        EXPECT_EQ(error_of(packet), PacketError::bad_transport_header) << length;
    }
    set_u16(packet, 20 + 4, 18);
    EXPECT_EQ(parsed(packet).payload_length, 10u);
    set_u16(packet, 2, 20 + 7);  // no room for the UDP header
    EXPECT_EQ(error_of(packet), PacketError::truncated);
}

TEST(PacketParse, ErrorsHaveDistinctNames) {
    const std::vector<PacketError> errors = {PacketError::truncated,         PacketError::bad_version,
                                             PacketError::bad_header_length, PacketError::fragment,
                                             PacketError::extension_headers, PacketError::bad_transport_header};
    std::set<std::string> names;
    for (const PacketError error : errors) names.insert(packet_error_name(error));
    EXPECT_EQ(names.size(), errors.size());
    EXPECT_EQ(std::string(packet_error_name(PacketError::truncated)), "truncated");
}

// ---- checksums

TEST(ChecksumInternet, MatchesTheRfc1071Example) {
    // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    const Bytes bytes = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(internet_checksum(bytes), 0x220d);
}

TEST(ChecksumInternet, PadsAnOddLengthWithAZeroByte) {
    EXPECT_EQ(internet_checksum(Bytes{0x01, 0x02, 0x03}), internet_checksum(Bytes{0x01, 0x02, 0x03, 0x00}));
    EXPECT_EQ(internet_checksum(Bytes{0x01, 0x02, 0x03}), static_cast<std::uint16_t>(~0x0402));
    EXPECT_EQ(internet_checksum(Bytes{0xab}), static_cast<std::uint16_t>(~0xab00));
}

TEST(ChecksumInternet, CarriesWrapAround) {
    EXPECT_EQ(internet_checksum(Bytes{0xff, 0xff, 0xff, 0xff, 0x00, 0x01}), 0xfffe);
    EXPECT_EQ(internet_checksum(Bytes(65536, 0xff)), 0x0000);
    EXPECT_EQ(internet_checksum(Bytes{}), 0xffff);
}

TEST(ChecksumInternet, AddsThePartialSum) {
    const Bytes bytes = payload_of_size(33);
    Bytes with_prefix = {0x12, 0x34, 0xff, 0xff};
    with_prefix.insert(with_prefix.end(), bytes.begin(), bytes.end());
    EXPECT_EQ(internet_checksum(bytes, 0x1234 + 0xffff), internet_checksum(with_prefix));
    EXPECT_EQ(internet_checksum(bytes, 0xffffffff), internet_checksum(bytes, 0xffff));  // 2^32-1 ≡ 0 ≡ 0xffff
}

TEST(ChecksumInternet, MatchesTheReferenceOnManyLengths) {
    std::mt19937 random(7);
    for (std::size_t size = 0; size < 300; ++size) {
        Bytes bytes(size);
        for (auto& byte : bytes) byte = static_cast<std::uint8_t>(random());
        EXPECT_EQ(internet_checksum(bytes), reference_checksum(bytes)) << size;
    }
}

TEST(PacketChecksums, HoldForBuiltPackets) {
    for (const IpVersion version : {IpVersion::v4, IpVersion::v6}) {
        for (const std::uint8_t protocol : {ip_protocol::tcp, ip_protocol::udp}) {
            PacketSpec spec = spec_for(version, protocol, 101);
            const Bytes packet = build_packet(spec);
            EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
        }
    }
}

TEST(PacketChecksums, FailWhenAnyCoveredByteChanges) {
    for (const IpVersion version : {IpVersion::v4, IpVersion::v6}) {
        for (const std::uint8_t protocol : {ip_protocol::tcp, ip_protocol::udp}) {
            PacketSpec spec = spec_for(version, protocol, 13);
            const Bytes packet = build_packet(spec);
            const PacketView view = parsed(packet);
            // Version 6 byte 0..7 (version, class, flow label, payload length, next header, hop
            // limit) are not covered; the payload length is, through the pseudo-header, but a
            // change there no longer parses the same.
            const std::size_t first_covered = version == IpVersion::v4 ? 0 : 8;
            for (std::size_t i = first_covered; i < packet.size(); ++i) {
                if (version == IpVersion::v4 && (i == 2 || i == 3)) continue;  // total length
                Bytes changed = packet;
                changed[i] ^= 0x10;
                EXPECT_FALSE(has_valid_checksums(changed, view)) << "byte " << i;
            }
        }
    }
}

TEST(PacketChecksums, UdpOverIpv4MayHaveNone) {
    PacketSpec spec;
    spec.protocol = ip_protocol::udp;
    spec.has_udp_checksum = false;
    spec.payload = payload_of_size(20);
    Bytes packet = build_packet(spec);
    EXPECT_EQ(get_u16(packet, 20 + 6), 0);
    EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
    packet.back() ^= 1;  // nothing checks the payload
    EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
    packet[8] ^= 1;  // but the IP header checksum still holds the header
    EXPECT_FALSE(has_valid_checksums(packet, parsed(packet)));
}

TEST(PacketChecksums, UdpOverIpv6MustHaveOne) {
    PacketSpec spec;
    spec.version = IpVersion::v6;
    spec.protocol = ip_protocol::udp;
    spec.source = endpoint("fd42:42:42::1", 1000);
    spec.destination = endpoint("2001:db8::1", 53);
    Bytes packet = build_packet(spec);
    set_u16(packet, 40 + 6, 0);
    EXPECT_FALSE(has_valid_checksums(packet, parsed(packet)));
}

TEST(PacketChecksums, AViewThatDoesNotFitThePacketIsNotValid) {
    const Bytes packet = build_packet(PacketSpec{});
    PacketView view = parsed(packet);
    view.total_length = packet.size() + 1;
    EXPECT_FALSE(has_valid_checksums(packet, view));
    view = parsed(packet);
    view.version = IpVersion::v6;
    view.ip_header_length = 20;
    EXPECT_FALSE(has_valid_checksums(packet, view));
}

// ---- rewriting

// Rewrites `spec`'s packet to the new endpoints and expects the very bytes of a packet built
// with them from scratch: the incremental update equals a full recomputation.
void expect_rewrite_matches_full_recomputation(const PacketSpec& spec, const Endpoint& source,
                                               const Endpoint& destination) {
    SCOPED_TRACE((spec.version == IpVersion::v4 ? "v4 " : "v6 ") +
                 std::string(spec.protocol == ip_protocol::tcp ? "TCP " : "UDP ") + spec.source.address.text() +
                 ":" + std::to_string(spec.source.port) + " > " + spec.destination.address.text() + ":" +
                 std::to_string(spec.destination.port) + " rewritten to " + source.address.text() + ":" +
                 std::to_string(source.port) + " > " + destination.address.text() + ":" +
                 std::to_string(destination.port) + ", payload " + std::to_string(spec.payload.size()));
    const Bytes original = build_packet(spec);
    const PacketView view = parsed(original);
    ASSERT_TRUE(has_valid_checksums(original, view));

    Bytes rewritten = original;
    rewrite_endpoints(rewritten, view, source, destination);
    PacketSpec expected_spec = spec;
    expected_spec.source = source;
    expected_spec.destination = destination;
    EXPECT_EQ(rewritten, build_packet(expected_spec));

    const PacketView after = parsed(rewritten);
    EXPECT_EQ(after.source, source);
    EXPECT_EQ(after.destination, destination);
    EXPECT_EQ(after.total_length, view.total_length);
    EXPECT_EQ(after.payload_length, view.payload_length);
    EXPECT_TRUE(has_valid_checksums(rewritten, after));
}

const std::vector<std::string> ipv4_addresses = {"0.0.0.0",       "255.255.255.255", "10.200.3.1",
                                                 "10.200.3.2",    "93.184.216.34",   "127.0.0.1",
                                                 "254.255.1.255", "1.0.0.1"};
const std::vector<std::string> ipv6_addresses = {"::",
                                                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                                                 "fd42:42:42::1",
                                                 "fd42:42:42::2",
                                                 "2606:2800:220:1:248:1893:25c8:1946",
                                                 "::1",
                                                 "fffe:ffff::ffff:1",
                                                 "2001:db8::"};
const std::vector<std::uint16_t> ports = {0, 1, 53, 443, 20001, 38211, 51000, 65534, 65535};
const std::vector<std::size_t> payload_sizes = {0, 1, 2, 3, 7, 64, 1001};

TEST(PacketRewrite, MatchesAFullRecomputationOnHandMadePackets) {
    std::size_t cases = 0;
    for (const IpVersion version : {IpVersion::v4, IpVersion::v6}) {
        const auto& addresses = version == IpVersion::v4 ? ipv4_addresses : ipv6_addresses;
        const std::size_t count = addresses.size();
        for (const std::uint8_t protocol : {ip_protocol::tcp, ip_protocol::udp}) {
            for (std::size_t size_index = 0; size_index < payload_sizes.size(); ++size_index) {
                for (std::size_t i = 0; i < count; ++i) {
                    for (std::size_t j = 0; j < count; ++j) {
                        PacketSpec spec;
                        spec.version = version;
                        spec.protocol = protocol;
                        spec.source = endpoint(addresses[i], ports[(i + size_index) % ports.size()]);
                        spec.destination = endpoint(addresses[j], ports[(j * 3 + 1) % ports.size()]);
                        spec.payload = payload_of_size(payload_sizes[size_index], static_cast<unsigned>(i * count + j));
                        spec.ipv4_option_words = (i + j) % 3 == 0 ? 2 : 0;
                        spec.tcp_option_words = (i + j) % 2 == 0 ? 3 : 0;
                        spec.has_udp_checksum = (i + j + size_index) % 5 != 0;
                        spec.tcp_flags = static_cast<std::uint8_t>(i * 16 + j);
                        const Endpoint source = endpoint(addresses[(i + j + 1) % count], ports[(i * 2 + j) % ports.size()]);
                        const Endpoint destination =
                            endpoint(addresses[(i * 2 + j + 3) % count], ports[(i + j * 5 + 2) % ports.size()]);
                        expect_rewrite_matches_full_recomputation(spec, source, destination);
                        ++cases;
                    }
                }
            }
        }
    }
    EXPECT_EQ(cases, 2u * 2u * payload_sizes.size() * 64u);
}

TEST(PacketRewrite, MatchesAFullRecomputationOnRandomPackets) {
    std::mt19937 random(20240611);
    const auto random_endpoint = [&](IpVersion version) {
        Endpoint result;
        result.address.version = version;
        for (std::size_t i = 0; i < (version == IpVersion::v4 ? 4u : 16u); ++i)
            result.address.bytes[i] = static_cast<std::uint8_t>(random() % 4 == 0 ? 0xff : random());
        result.port = static_cast<std::uint16_t>(random());
        return result;
    };
    for (int round = 0; round < 2000; ++round) {
        PacketSpec spec;
        spec.version = round % 2 ? IpVersion::v6 : IpVersion::v4;
        spec.protocol = round % 4 < 2 ? ip_protocol::tcp : ip_protocol::udp;
        spec.source = random_endpoint(spec.version);
        spec.destination = random_endpoint(spec.version);
        spec.payload = payload_of_size(random() % 1500, static_cast<unsigned>(round));
        spec.identification = static_cast<std::uint16_t>(random());
        spec.tcp_sequence = static_cast<std::uint32_t>(random());
        spec.tcp_acknowledgement = static_cast<std::uint32_t>(random());
        spec.has_udp_checksum = random() % 8 != 0;
        expect_rewrite_matches_full_recomputation(spec, random_endpoint(spec.version), random_endpoint(spec.version));
    }
}

// A payload word that brings the checksum of `spec` rewritten to the new endpoints to zero.
PacketSpec with_zero_checksum_after(PacketSpec spec, const Endpoint& source, const Endpoint& destination) {
    spec.payload = {0, 0, 0x33};
    PacketSpec rewritten = spec;
    rewritten.source = source;
    rewritten.destination = destination;
    const Bytes packet = build_packet(rewritten);
    const std::size_t checksum_offset = transport_offset(packet) + (spec.protocol == ip_protocol::tcp ? 16 : 6);
    const std::uint16_t checksum = get_u16(packet, checksum_offset);
    spec.payload[0] = static_cast<std::uint8_t>(checksum >> 8);
    spec.payload[1] = static_cast<std::uint8_t>(checksum & 0xff);
    return spec;
}

TEST(PacketRewrite, AUdpChecksumThatComesOutZeroIsWrittenAsFfff) {
    for (const IpVersion version : {IpVersion::v4, IpVersion::v6}) {
        PacketSpec spec;
        spec.version = version;
        spec.protocol = ip_protocol::udp;
        const auto& addresses = version == IpVersion::v4 ? ipv4_addresses : ipv6_addresses;
        spec.source = endpoint(addresses[2], 40000);
        spec.destination = endpoint(addresses[4], 53);
        const Endpoint source = endpoint(addresses[3], 20001);
        const Endpoint destination = endpoint(addresses[2], 38211);
        spec = with_zero_checksum_after(spec, source, destination);

        Bytes packet = build_packet(spec);
        const PacketView view = parsed(packet);
        rewrite_endpoints(packet, view, source, destination);
        EXPECT_EQ(get_u16(packet, view.ip_header_length + 6), 0xffff);
        EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
        expect_rewrite_matches_full_recomputation(spec, source, destination);

        // And back: an original checksum of ffff is the zero it stands for.
        Bytes back = packet;
        rewrite_endpoints(back, parsed(packet), spec.source, spec.destination);
        EXPECT_EQ(back, build_packet(spec));
    }
}

TEST(PacketRewrite, ATcpChecksumThatComesOutZeroStaysZero) {
    for (const IpVersion version : {IpVersion::v4, IpVersion::v6}) {
        PacketSpec spec;
        spec.version = version;
        const auto& addresses = version == IpVersion::v4 ? ipv4_addresses : ipv6_addresses;
        spec.source = endpoint(addresses[2], 51000);
        spec.destination = endpoint(addresses[4], 443);
        const Endpoint source = endpoint(addresses[3], 20001);
        const Endpoint destination = endpoint(addresses[2], 38211);
        spec = with_zero_checksum_after(spec, source, destination);

        Bytes packet = build_packet(spec);
        const PacketView view = parsed(packet);
        rewrite_endpoints(packet, view, source, destination);
        EXPECT_EQ(get_u16(packet, view.ip_header_length + 16), 0);
        expect_rewrite_matches_full_recomputation(spec, source, destination);
    }
}

TEST(PacketRewrite, AnIpv4HeaderChecksumThatComesOutZeroStaysZero) {
    PacketSpec spec;
    const Endpoint source = endpoint("10.200.3.2", 20001);
    const Endpoint destination = endpoint("10.200.3.1", 38211);
    PacketSpec rewritten = spec;
    rewritten.source = source;
    rewritten.destination = destination;
    rewritten.identification = 0;
    spec.identification = get_u16(build_packet(rewritten), 10);

    Bytes packet = build_packet(spec);
    rewrite_endpoints(packet, parsed(packet), source, destination);
    EXPECT_EQ(get_u16(packet, 10), 0);
    expect_rewrite_matches_full_recomputation(spec, source, destination);
}

TEST(PacketRewrite, UdpOverIpv4WithoutAChecksumKeepsNone) {
    PacketSpec spec;
    spec.protocol = ip_protocol::udp;
    spec.has_udp_checksum = false;
    spec.payload = payload_of_size(31);
    Bytes packet = build_packet(spec);
    rewrite_endpoints(packet, parsed(packet), endpoint("10.200.3.2", 1), endpoint("255.255.255.255", 65535));
    EXPECT_EQ(get_u16(packet, 20 + 6), 0);
    EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
}

TEST(PacketRewrite, TheDesignDocumentsSynAndSynAckPassTheNat) {
    // docs/packet-engine.md §3.2: the app's SYN goes to the listener from the fake peer, the listener's SYN-ACK
    // goes back to the app from the original destination.
    PacketSpec syn;
    syn.ipv4_option_words = 0;
    syn.tcp_option_words = 5;  // MSS, SACK, timestamps, window scale
    const Endpoint fake = endpoint("10.200.3.2", 20001);
    const Endpoint listener = endpoint("10.200.3.1", 38211);
    Bytes packet = build_packet(syn);
    rewrite_endpoints(packet, parsed(packet), fake, listener);
    EXPECT_EQ(parsed(packet).source, fake);
    EXPECT_EQ(parsed(packet).destination, listener);
    EXPECT_EQ(parsed(packet).tcp_flags, tcp_flag::syn);
    EXPECT_EQ(parsed(packet).tcp_sequence, syn.tcp_sequence);
    EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));

    PacketSpec syn_ack = syn;
    syn_ack.source = listener;
    syn_ack.destination = fake;
    syn_ack.tcp_flags = tcp_flag::syn | tcp_flag::ack;
    syn_ack.tcp_acknowledgement = syn.tcp_sequence + 1;
    expect_rewrite_matches_full_recomputation(syn_ack, syn.destination, syn.source);
}

TEST(PacketRewrite, LeavesEverythingButTheEndpointsAndChecksumsAlone) {
    PacketSpec spec;
    spec.ipv4_option_words = 1;
    spec.payload = payload_of_size(77);
    const Bytes original = build_packet(spec);
    Bytes packet = original;
    rewrite_endpoints(packet, parsed(packet), endpoint("1.2.3.4", 5), endpoint("6.7.8.9", 10));
    for (std::size_t i = 0; i < packet.size(); ++i) {
        const bool may_change = (i >= 10 && i < 20) || (i >= 24 && i < 28) || i == 24 + 16 || i == 24 + 17;
        if (!may_change) {
            EXPECT_EQ(packet[i], original[i]) << "byte " << i;
        }
    }
}

TEST(PacketRewrite, RefusesEndpointsOfTheOtherFamilyAndPacketsWithoutPorts) {
    Bytes packet = build_packet(PacketSpec{});
    const PacketView view = parsed(packet);
    const Bytes before = packet;
    EXPECT_THROW(rewrite_endpoints(packet, view, endpoint("::1", 1), endpoint("10.0.0.1", 2)), Error);
    EXPECT_THROW(rewrite_endpoints(packet, view, endpoint("10.0.0.1", 1), endpoint("::1", 2)), Error);
    EXPECT_EQ(packet, before);

    PacketSpec icmp;
    icmp.protocol = ip_protocol::icmp;
    Bytes echo = build_packet(icmp);
    EXPECT_THROW(rewrite_endpoints(echo, parsed(echo), icmp.source, icmp.destination), Error);
}

TEST(PacketRewrite, RefusesAViewThatDoesNotFitThePacket) {
    Bytes packet = build_packet(PacketSpec{});
    PacketView view = parsed(packet);
    view.total_length = packet.size() + 1;
    EXPECT_THROW(rewrite_endpoints(packet, view, endpoint("10.0.0.1", 1), endpoint("10.0.0.2", 2)), Error);
    view = parsed(packet);
    view.ip_header_length = packet.size() - 19;  // no room for the TCP header
    EXPECT_THROW(rewrite_endpoints(packet, view, endpoint("10.0.0.1", 1), endpoint("10.0.0.2", 2)), Error);
    view = parsed(packet);
    view.version = IpVersion::v6;
    view.ip_header_length = 20;
    EXPECT_THROW(rewrite_endpoints(packet, view, endpoint("::1", 1), endpoint("::2", 2)), Error);
    EXPECT_EQ(packet, build_packet(PacketSpec{}));
}


// ---- rewriting a partial checksum (vnet NEEDS_CSUM, docs/packet-engine.md §3.4)

// The pseudo-header's sum, folded and not inverted: what the kernel leaves in the checksum
// field of a CHECKSUM_PARTIAL packet for whoever completes it.
std::uint16_t partial_pseudo_header_sum(const Bytes& packet) {
    const PacketView view = parsed(packet);
    const std::size_t segment_length = view.total_length - view.ip_header_length;
    Bytes pseudo;
    put_address(pseudo, view.source.address);
    put_address(pseudo, view.destination.address);
    if (view.version == IpVersion::v4) {
        pseudo.push_back(0);
        pseudo.push_back(view.protocol);
        put_u16(pseudo, static_cast<std::uint16_t>(segment_length));
    } else {
        put_u32(pseudo, static_cast<std::uint32_t>(segment_length));
        pseudo.insert(pseudo.end(), {0, 0, 0, view.protocol});
    }
    return static_cast<std::uint16_t>(~reference_checksum(pseudo));
}

std::size_t checksum_offset_of(const Bytes& packet) {
    const PacketView view = parsed(packet);
    return view.ip_header_length + (view.protocol == ip_protocol::tcp ? 16 : 6);
}

// `spec`'s packet as read from the TUN with NEEDS_CSUM: the partial sum in the checksum field.
Bytes partial_packet(const PacketSpec& spec) {
    Bytes packet = build_packet(spec);
    set_u16(packet, checksum_offset_of(packet), partial_pseudo_header_sum(packet));
    return packet;
}

// What the kernel does when it sends a CHECKSUM_PARTIAL packet: the checksum of the segment,
// partial sum included, goes into the field (a UDP zero as ffff).
void complete_checksum(Bytes& packet) {
    const PacketView view = parsed(packet);
    const Bytes segment(packet.begin() + static_cast<std::ptrdiff_t>(view.ip_header_length),
                        packet.begin() + static_cast<std::ptrdiff_t>(view.total_length));
    std::uint16_t checksum = reference_checksum(segment);
    if (view.protocol == ip_protocol::udp && checksum == 0) checksum = 0xffff;
    set_u16(packet, checksum_offset_of(packet), checksum);
}

bool has_valid_ipv4_header_checksum(const Bytes& packet) {
    const PacketView view = parsed(packet);
    return reference_checksum(Bytes(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(view.ip_header_length))) == 0;
}

struct PartialCase {
    IpVersion version;
    std::uint8_t protocol;
    Endpoint source, destination;  // after the rewrite
};

std::vector<PartialCase> partial_cases() {
    std::vector<PartialCase> cases;
    for (const std::uint8_t protocol : {ip_protocol::tcp, ip_protocol::udp}) {
        cases.push_back({IpVersion::v4, protocol, endpoint("10.200.3.2", 20001), endpoint("10.200.3.1", 38211)});
        cases.push_back({IpVersion::v4, protocol, endpoint("255.254.0.255", 65535), endpoint("1.0.0.1", 1)});
        cases.push_back({IpVersion::v6, protocol, endpoint("fd42:42:42::2", 20001), endpoint("fd42:42:42::1", 38211)});
        cases.push_back({IpVersion::v6, protocol, endpoint("ffff:ffff::fffe", 65535), endpoint("::1", 1)});
    }
    return cases;
}

TEST(PacketRewritePartial, ACompletedPartialChecksumIsValidAfterTheRewrite) {
    for (const PartialCase& partial : partial_cases()) {
        for (const std::size_t size : {0u, 1u, 7u, 100u, 1001u}) {
            SCOPED_TRACE(std::string(partial.protocol == ip_protocol::tcp ? "TCP " : "UDP ") +
                         partial.source.address.text() + " payload " + std::to_string(size));
            const PacketSpec spec = spec_for(partial.version, partial.protocol, size);
            Bytes packet = partial_packet(spec);
            rewrite_endpoints(packet, parsed(packet), partial.source, partial.destination, TransportChecksum::partial);

            const PacketView after = parsed(packet);
            EXPECT_EQ(after.source, partial.source);
            EXPECT_EQ(after.destination, partial.destination);
            if (partial.version == IpVersion::v4) {
                EXPECT_TRUE(has_valid_ipv4_header_checksum(packet));
            }
            // Still a partial sum, now of the new pseudo-header; the ports are not in it.
            EXPECT_EQ(get_u16(packet, checksum_offset_of(packet)), partial_pseudo_header_sum(packet));

            complete_checksum(packet);
            EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
            PacketSpec expected = spec;
            expected.source = partial.source;
            expected.destination = partial.destination;
            EXPECT_EQ(packet, build_packet(expected));
        }
    }
}

TEST(PacketRewritePartial, TheCompleteModeOnAPartialChecksumWouldBreakIt) {
    for (const PartialCase& partial : partial_cases()) {
        SCOPED_TRACE(std::string(partial.protocol == ip_protocol::tcp ? "TCP " : "UDP ") +
                     partial.source.address.text());
        const PacketSpec spec = spec_for(partial.version, partial.protocol, 64);
        Bytes as_partial = partial_packet(spec);
        Bytes as_complete = as_partial;
        rewrite_endpoints(as_partial, parsed(as_partial), partial.source, partial.destination,
                          TransportChecksum::partial);
        rewrite_endpoints(as_complete, parsed(as_complete), partial.source, partial.destination,
                          TransportChecksum::complete);
        complete_checksum(as_partial);
        complete_checksum(as_complete);
        EXPECT_TRUE(has_valid_checksums(as_partial, parsed(as_partial)));
        EXPECT_FALSE(has_valid_checksums(as_complete, parsed(as_complete)));
    }
}

TEST(PacketRewritePartial, OnlyTheAddressesMoveThePartialSum) {
    for (const IpVersion version : {IpVersion::v4, IpVersion::v6}) {
        const PacketSpec spec = spec_for(version, ip_protocol::tcp, 10);
        Bytes packet = partial_packet(spec);
        const std::uint16_t before = get_u16(packet, checksum_offset_of(packet));
        Endpoint source = spec.source, destination = spec.destination;
        source.port = 1;
        destination.port = 65535;
        rewrite_endpoints(packet, parsed(packet), source, destination, TransportChecksum::partial);
        EXPECT_EQ(get_u16(packet, checksum_offset_of(packet)), before);
        EXPECT_EQ(parsed(packet).source.port, 1);
        EXPECT_EQ(parsed(packet).destination.port, 65535);
        complete_checksum(packet);
        EXPECT_TRUE(has_valid_checksums(packet, parsed(packet)));
    }
}

TEST(PacketRewritePartial, RewritingBackRestoresThePacket) {
    for (const PartialCase& partial : partial_cases()) {
        const PacketSpec spec = spec_for(partial.version, partial.protocol, 33);
        const Bytes original = partial_packet(spec);
        Bytes packet = original;
        rewrite_endpoints(packet, parsed(packet), partial.source, partial.destination, TransportChecksum::partial);
        rewrite_endpoints(packet, parsed(packet), spec.source, spec.destination, TransportChecksum::partial);
        EXPECT_EQ(packet, original) << partial.source.address.text();
    }
}

}  // namespace
}  // namespace psi::packet
