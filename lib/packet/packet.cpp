#include "packet/packet.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>

#include "core/byte_reader.hpp"
#include "core/error.hpp"
#include "packet/wire.hpp"

namespace psi::packet {
namespace {

using wire::address_size;
using wire::ipv4_header_size;
using wire::ipv6_header_size;
using wire::load_u16;
using wire::read_address;
using wire::tcp_header_size;
using wire::udp_header_size;

// Offsets inside the headers, for the rewrite.
constexpr std::size_t ipv4_checksum_offset = 10;
constexpr std::size_t ipv4_source_offset = 12;
constexpr std::size_t ipv6_source_offset = 8;
constexpr std::size_t tcp_checksum_offset = 16;
constexpr std::size_t udp_checksum_offset = 6;

constexpr std::uint16_t ipv4_more_fragments = 0x2000;
constexpr std::uint16_t ipv4_fragment_offset_mask = 0x1fff;

// Fills the IPv4 fields of `view`; the packet's bytes from total_length on are not its own.
std::optional<PacketError> parse_ipv4_header(std::span<const std::uint8_t> packet, PacketView& view) {
    ByteReader header(packet);
    const std::uint8_t version_and_length = header.u8();
    header.skip(1);  // type of service
    const std::uint16_t total_length = header.u16();
    header.skip(2);  // identification
    const std::uint16_t fragment = header.u16();
    header.skip(1);  // time to live
    view.protocol = header.u8();
    header.skip(2);  // header checksum
    read_address(header, IpVersion::v4, view.source.address);
    read_address(header, IpVersion::v4, view.destination.address);
    if (header.is_short()) return PacketError::truncated;

    view.version = IpVersion::v4;
    view.ip_header_length = static_cast<std::size_t>(version_and_length & 0x0f) * 4;
    view.total_length = total_length;
    if (view.ip_header_length < ipv4_header_size || view.ip_header_length > packet.size())
        return PacketError::bad_header_length;
    if (view.total_length > packet.size()) return PacketError::truncated;
    if (view.total_length < view.ip_header_length) return PacketError::bad_header_length;
    if (fragment & (ipv4_more_fragments | ipv4_fragment_offset_mask)) return PacketError::fragment;
    return std::nullopt;
}

std::optional<PacketError> parse_ipv6_header(std::span<const std::uint8_t> packet, PacketView& view) {
    ByteReader header(packet);
    header.skip(4);  // version, traffic class, flow label
    const std::uint16_t payload_length = header.u16();
    view.protocol = header.u8();
    header.skip(1);  // hop limit
    read_address(header, IpVersion::v6, view.source.address);
    read_address(header, IpVersion::v6, view.destination.address);
    if (header.is_short()) return PacketError::truncated;

    view.version = IpVersion::v6;
    view.ip_header_length = ipv6_header_size;
    view.total_length = ipv6_header_size + payload_length;
    if (view.total_length > packet.size()) return PacketError::truncated;
    if (view.protocol != ip_protocol::tcp && view.protocol != ip_protocol::udp &&
        view.protocol != ip_protocol::icmpv6)
        return PacketError::extension_headers;
    return std::nullopt;
}

// `segment` is what follows the IP header, up to total_length.
std::optional<PacketError> parse_transport_header(std::span<const std::uint8_t> segment, PacketView& view) {
    ByteReader transport(segment);
    if (view.protocol == ip_protocol::tcp) {
        view.source.port = transport.u16();
        view.destination.port = transport.u16();
        view.tcp_sequence = transport.u32();
        view.tcp_acknowledgement = transport.u32();
        const std::size_t header_length = static_cast<std::size_t>(transport.u8() >> 4) * 4;
        view.tcp_flags = transport.u8();
        transport.skip(tcp_header_size - 14);  // window, checksum, urgent pointer
        if (transport.is_short()) return PacketError::truncated;
        if (header_length < tcp_header_size) return PacketError::bad_transport_header;
        transport.skip(header_length - tcp_header_size);  // options
        if (transport.is_short()) return PacketError::bad_transport_header;
    } else if (view.protocol == ip_protocol::udp) {
        view.source.port = transport.u16();
        view.destination.port = transport.u16();
        const std::uint16_t length = transport.u16();
        transport.skip(2);  // checksum
        if (transport.is_short()) return PacketError::truncated;
        // Strict: a UDP length shorter than the IP payload would leave bytes that belong to nobody.
        if (length != segment.size()) return PacketError::bad_transport_header;
    }
    // ICMP, ICMPv6 and anything else IPv4 carries: no ports, and everything after the IP header
    // counts as payload.
    view.payload_length = transport.remaining();
    return std::nullopt;
}

std::uint16_t fold(std::uint64_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(sum);
}

// `count` bytes from `offset`, or an Error: the rewrite never touches memory a check has not
// covered, even when handed a view that does not belong to the packet.
template <typename Byte>
std::span<Byte> checked_subspan(std::span<Byte> bytes, std::size_t offset, std::size_t count) {
    if (offset > bytes.size() || count > bytes.size() - offset)
        throw Error("packet rewrite: the parsed view does not fit the packet");
    return bytes.subspan(offset, count);
}

void store_u16(std::span<std::uint8_t> two_bytes, std::uint16_t value) { wire::store_u16(two_bytes, 0, value); }

// The sum of the pseudo-header (RFC 793, RFC 768, RFC 8200 §8.1) of a TCP or UDP segment.
std::uint32_t pseudo_header_sum(std::span<const std::uint8_t> packet, const PacketView& view) {
    const std::size_t size = address_size(view.version);
    const std::size_t source_offset = view.version == IpVersion::v4 ? ipv4_source_offset : ipv6_source_offset;
    ByteReader addresses(checked_subspan(packet, source_offset, 2 * size));
    std::uint32_t sum = 0;
    while (!addresses.at_end()) sum += addresses.u16();
    const std::size_t segment_length = view.total_length - view.ip_header_length;
    sum += static_cast<std::uint32_t>(segment_length >> 16) + static_cast<std::uint32_t>(segment_length & 0xffff);
    sum += view.protocol;
    return sum;
}

// An RFC 1624 update: the one's-complement difference of the words that change.
class ChecksumUpdate {
public:
    // Adds ~m + m' for every 16-bit word of the old and new bytes (of the same even size).
    void replace(std::span<const std::uint8_t> old_bytes, std::span<const std::uint8_t> new_bytes) {
        ByteReader old_words(old_bytes), new_words(new_bytes);
        while (old_words.remaining() >= 2 && new_words.remaining() >= 2) {
            difference_ += static_cast<std::uint16_t>(~old_words.u16());
            difference_ += new_words.u16();
        }
    }

    void replace(std::uint16_t old_word, std::uint16_t new_word) {
        difference_ += static_cast<std::uint16_t>(~old_word);
        difference_ += new_word;
    }

    // HC' = ~(~HC + ~m + m') (RFC 1624 equation 3).
    std::uint16_t apply(std::uint16_t checksum) const {
        return static_cast<std::uint16_t>(~fold(static_cast<std::uint16_t>(~checksum) + difference_));
    }

    // P' = fold(P + ~m + m'): a sum that is not inverted, such as a partial checksum.
    std::uint16_t apply_to_sum(std::uint16_t sum) const { return fold(sum + difference_); }

private:
    std::uint64_t difference_ = 0;
};

std::array<std::uint8_t, 2> port_bytes(std::uint16_t port) {
    return {static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port & 0xff)};
}

}  // namespace

std::string IpAddress::text() const {
    char buffer[INET6_ADDRSTRLEN] = {};
    const int family = version == IpVersion::v4 ? AF_INET : AF_INET6;
    if (!inet_ntop(family, bytes.data(), buffer, sizeof buffer)) return "?";
    return buffer;
}

const char* packet_error_name(PacketError error) {
    switch (error) {
        case PacketError::truncated: return "truncated";
        case PacketError::bad_version: return "not IPv4 or IPv6";
        case PacketError::bad_header_length: return "bad IP header length";
        case PacketError::fragment: return "IPv4 fragment";
        case PacketError::extension_headers: return "IPv6 extension headers";
        case PacketError::bad_transport_header: return "bad TCP or UDP header";
    }
    return "?";
}

std::variant<PacketView, PacketError> parse_packet(std::span<const std::uint8_t> packet) {
    ByteReader first_byte(packet);
    const std::uint8_t version = first_byte.u8() >> 4;
    if (first_byte.is_short()) return PacketError::truncated;

    PacketView view;
    std::optional<PacketError> error;
    if (version == 4)
        error = parse_ipv4_header(packet, view);
    else if (version == 6)
        error = parse_ipv6_header(packet, view);
    else
        return PacketError::bad_version;
    if (error) return *error;

    ByteReader datagram(packet);
    datagram.skip(view.ip_header_length);
    const auto segment = datagram.take(view.total_length - view.ip_header_length);
    if (datagram.is_short()) return PacketError::truncated;  // the header parsers checked this already
    error = parse_transport_header(segment, view);
    if (error) return *error;
    return view;
}

std::uint16_t internet_checksum(std::span<const std::uint8_t> bytes, std::uint32_t partial_sum) {
    std::uint64_t sum = partial_sum;
    ByteReader words(bytes);
    while (words.remaining() >= 2) sum += words.u16();
    if (!words.at_end()) sum += static_cast<std::uint32_t>(words.u8()) << 8;  // odd length: pad with a zero byte
    return static_cast<std::uint16_t>(~fold(sum));
}

bool has_valid_checksums(std::span<const std::uint8_t> packet, const PacketView& view) {
    const std::size_t smallest_header = view.version == IpVersion::v4 ? ipv4_header_size : ipv6_header_size;
    if (view.total_length > packet.size() || view.ip_header_length > view.total_length ||
        view.ip_header_length < smallest_header)
        return false;
    if (view.version == IpVersion::v4 && internet_checksum(packet.first(view.ip_header_length)) != 0) return false;
    if (view.protocol != ip_protocol::tcp && view.protocol != ip_protocol::udp) return true;

    const auto segment = packet.subspan(view.ip_header_length, view.total_length - view.ip_header_length);
    ByteReader transport(segment);
    transport.skip(view.protocol == ip_protocol::tcp ? tcp_checksum_offset : udp_checksum_offset);
    const std::uint16_t checksum = transport.u16();
    if (transport.is_short()) return false;
    if (view.protocol == ip_protocol::udp && checksum == 0)
        return view.version == IpVersion::v4;  // "no checksum": allowed over IPv4, never over IPv6
    return internet_checksum(segment, pseudo_header_sum(packet, view)) == 0;
}

void rewrite_endpoints(std::span<std::uint8_t> packet, const PacketView& view, const Endpoint& source,
                       const Endpoint& destination, TransportChecksum transport_checksum) {
    if (source.address.version != view.version || destination.address.version != view.version)
        throw Error("packet rewrite: the new endpoints are not of the packet's IP version");
    if (view.protocol != ip_protocol::tcp && view.protocol != ip_protocol::udp)
        throw Error("packet rewrite: only TCP and UDP packets have endpoints to rewrite");

    const std::size_t size = address_size(view.version);
    const bool is_v4 = view.version == IpVersion::v4;
    const bool is_tcp = view.protocol == ip_protocol::tcp;
    const auto datagram = checked_subspan(packet, 0, view.total_length);
    const auto header = checked_subspan(datagram, 0, view.ip_header_length);
    const std::size_t source_offset = is_v4 ? ipv4_source_offset : ipv6_source_offset;
    const auto source_address = checked_subspan(header, source_offset, size);
    const auto destination_address = checked_subspan(header, source_offset + size, size);
    const auto transport = checked_subspan(datagram, view.ip_header_length, is_tcp ? tcp_header_size : udp_header_size);
    const auto source_port = transport.subspan(0, 2);
    const auto destination_port = transport.subspan(2, 2);
    const auto checksum_field = transport.subspan(is_tcp ? tcp_checksum_offset : udp_checksum_offset, 2);
    const auto new_source = std::span<const std::uint8_t>(source.address.bytes).first(size);
    const auto new_destination = std::span<const std::uint8_t>(destination.address.bytes).first(size);

    ChecksumUpdate addresses;
    addresses.replace(source_address, new_source);
    addresses.replace(destination_address, new_destination);
    if (is_v4) {
        const auto header_checksum = checked_subspan(header, ipv4_checksum_offset, 2);
        store_u16(header_checksum, addresses.apply(load_u16(header_checksum)));
    }

    const std::uint16_t old_checksum = load_u16(checksum_field);
    if (transport_checksum == TransportChecksum::partial) {
        store_u16(checksum_field, addresses.apply_to_sum(old_checksum));
    } else {
        ChecksumUpdate segment = addresses;  // the pseudo-header holds the addresses
        segment.replace(load_u16(source_port), source.port);
        segment.replace(load_u16(destination_port), destination.port);
        if (is_tcp) {
            store_u16(checksum_field, segment.apply(old_checksum));
        } else if (!(is_v4 && old_checksum == 0)) {  // UDP/IPv4 without a checksum keeps none
            const std::uint16_t checksum = segment.apply(old_checksum);
            store_u16(checksum_field, checksum == 0 ? 0xffff : checksum);  // 0 would mean "none"
        }
    }

    std::copy(new_source.begin(), new_source.end(), source_address.begin());
    std::copy(new_destination.begin(), new_destination.end(), destination_address.begin());
    const auto source_port_bytes = port_bytes(source.port);
    const auto destination_port_bytes = port_bytes(destination.port);
    std::copy(source_port_bytes.begin(), source_port_bytes.end(), source_port.begin());
    std::copy(destination_port_bytes.begin(), destination_port_bytes.end(), destination_port.begin());
}

}  // namespace psi::packet
