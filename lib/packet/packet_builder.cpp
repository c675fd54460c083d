#include "packet/packet_builder.hpp"

#include <algorithm>

#include "core/byte_reader.hpp"
#include "core/error.hpp"
#include "packet/wire.hpp"

namespace psi::packet {
namespace {

constexpr std::uint8_t default_ttl = 64;
using wire::address_size;
using wire::ipv4_header_size;
using wire::ipv6_header_size;
using wire::store_u16;
using wire::tcp_header_size;
using wire::udp_header_size;
constexpr std::size_t icmp_header_size = 8;
constexpr std::size_t ipv4_error_limit = 576;   // RFC 1812 §4.3.2.3
constexpr std::size_t ipv6_error_limit = 1280;  // RFC 4443 §2.4 (c)

class PacketWriter {
public:
    explicit PacketWriter(std::vector<std::uint8_t>& bytes) : bytes_(bytes) {}
    void u8(std::uint8_t value) { bytes_.push_back(value); }
    void u16(std::uint16_t value) {
        bytes_.push_back(static_cast<std::uint8_t>(value >> 8));
        bytes_.push_back(static_cast<std::uint8_t>(value & 0xff));
    }
    void u32(std::uint32_t value) {
        u16(static_cast<std::uint16_t>(value >> 16));
        u16(static_cast<std::uint16_t>(value & 0xffff));
    }
    void address(const IpAddress& address) {
        bytes_.insert(bytes_.end(), address.bytes.begin(), address.bytes.begin() + address_size(address.version));
    }
    void append(std::span<const std::uint8_t> bytes) { bytes_.insert(bytes_.end(), bytes.begin(), bytes.end()); }

private:
    std::vector<std::uint8_t>& bytes_;
};

// The pseudo-header's sum (RFC 793, RFC 8200 §8.1): both addresses, the protocol, the length.
std::uint32_t pseudo_header_sum(const IpAddress& source, const IpAddress& destination, std::uint8_t protocol,
                                std::size_t length) {
    std::uint32_t sum = protocol + static_cast<std::uint32_t>(length >> 16) + static_cast<std::uint32_t>(length & 0xffff);
    for (const IpAddress* address : {&source, &destination})
        for (std::size_t i = 0; i < address_size(address->version); i += 2)
            sum += static_cast<std::uint32_t>(address->bytes[i] << 8 | address->bytes[i + 1]);
    return sum;
}

// An IP header for `payload_length` bytes of `protocol`, then the transport bytes, with the
// transport checksum at `checksum_offset` computed over the pseudo-header (when it has one).
std::vector<std::uint8_t> build_datagram(const IpAddress& source, const IpAddress& destination, std::uint8_t protocol,
                                         std::vector<std::uint8_t> transport, std::size_t checksum_offset,
                                         bool has_pseudo_header) {
    if (source.version != destination.version) throw Error("packet builder: mixed IP versions");
    const bool is_v4 = source.version == IpVersion::v4;
    const std::size_t header_size = is_v4 ? ipv4_header_size : ipv6_header_size;
    if (transport.size() > 65535 - (is_v4 ? header_size : 0)) throw Error("packet builder: datagram too large");

    std::vector<std::uint8_t> packet;
    packet.reserve(header_size + transport.size());
    PacketWriter writer(packet);
    if (is_v4) {
        writer.u8(0x45);
        writer.u8(0);
        writer.u16(static_cast<std::uint16_t>(header_size + transport.size()));
        writer.u16(0);       // identification: never fragmented
        writer.u16(0x4000);  // don't fragment
        writer.u8(default_ttl);
        writer.u8(protocol);
        writer.u16(0);
        writer.address(source);
        writer.address(destination);
        store_u16(packet, 10, internet_checksum(std::span(packet).first(header_size)));
    } else {
        writer.u32(0x60000000);
        writer.u16(static_cast<std::uint16_t>(transport.size()));
        writer.u8(protocol);
        writer.u8(default_ttl);
        writer.address(source);
        writer.address(destination);
    }
    const std::uint32_t partial =
        has_pseudo_header ? pseudo_header_sum(source, destination, protocol, transport.size()) : 0;
    std::uint16_t checksum = internet_checksum(transport, partial);
    if (protocol == ip_protocol::udp && checksum == 0) checksum = 0xffff;  // 0 would mean "none"
    store_u16(transport, checksum_offset, checksum);
    writer.append(transport);
    return packet;
}

}  // namespace

std::vector<std::uint8_t> build_tcp_reset(const PacketView& segment) {
    std::vector<std::uint8_t> tcp;
    PacketWriter writer(tcp);
    writer.u16(segment.destination.port);
    writer.u16(segment.source.port);
    const bool had_ack = (segment.tcp_flags & tcp_flag::ack) != 0;
    std::uint32_t acknowledge = segment.tcp_sequence + static_cast<std::uint32_t>(segment.payload_length);
    if (segment.tcp_flags & tcp_flag::syn) ++acknowledge;
    if (segment.tcp_flags & tcp_flag::fin) ++acknowledge;
    writer.u32(had_ack ? segment.tcp_acknowledgement : 0);
    writer.u32(had_ack ? 0 : acknowledge);
    writer.u8(static_cast<std::uint8_t>((tcp_header_size / 4) << 4));
    writer.u8(had_ack ? tcp_flag::rst : static_cast<std::uint8_t>(tcp_flag::rst | tcp_flag::ack));
    writer.u16(0);  // window
    writer.u16(0);  // checksum
    writer.u16(0);  // urgent pointer
    return build_datagram(segment.destination.address, segment.source.address, ip_protocol::tcp, std::move(tcp), 16,
                          true);
}

std::vector<std::uint8_t> build_udp(const Endpoint& source, const Endpoint& destination,
                                    std::span<const std::uint8_t> payload) {
    if (payload.size() > 65535 - ipv4_header_size - udp_header_size) throw Error("packet builder: UDP payload too large");
    std::vector<std::uint8_t> udp;
    udp.reserve(udp_header_size + payload.size());
    PacketWriter writer(udp);
    writer.u16(source.port);
    writer.u16(destination.port);
    writer.u16(static_cast<std::uint16_t>(udp_header_size + payload.size()));
    writer.u16(0);
    writer.append(payload);
    return build_datagram(source.address, destination.address, ip_protocol::udp, std::move(udp), 6, true);
}

std::vector<std::uint8_t> build_unreachable(std::span<const std::uint8_t> original, const PacketView& view,
                                            Unreachable reason) {
    const bool is_v4 = view.version == IpVersion::v4;
    std::uint8_t code = 0;
    if (is_v4) {
        switch (reason) {
            case Unreachable::network: code = 0; break;
            case Unreachable::host: code = 1; break;
            case Unreachable::port: code = 3; break;
            case Unreachable::administratively_prohibited: code = 13; break;
        }
    } else {
        switch (reason) {
            case Unreachable::network: code = 0; break;
            case Unreachable::host: code = 3; break;
            case Unreachable::port: code = 4; break;
            case Unreachable::administratively_prohibited: code = 1; break;
        }
    }
    const std::size_t limit = (is_v4 ? ipv4_error_limit - ipv4_header_size : ipv6_error_limit - ipv6_header_size) -
                              icmp_header_size;
    const auto quoted = original.first(std::min({original.size(), view.total_length, limit}));
    std::vector<std::uint8_t> icmp;
    PacketWriter writer(icmp);
    writer.u8(is_v4 ? 3 : 1);  // destination unreachable
    writer.u8(code);
    writer.u16(0);
    writer.u32(0);
    writer.append(quoted);
    return build_datagram(view.destination.address, view.source.address, is_v4 ? ip_protocol::icmp : ip_protocol::icmpv6,
                          std::move(icmp), 2, !is_v4);
}

bool may_answer_with_icmp_error(std::span<const std::uint8_t> packet, const PacketView& view) {
    const auto& destination = view.destination.address.bytes;
    if (view.version == IpVersion::v4) {
        if (destination[0] >= 224) return false;  // multicast, reserved, broadcast
    } else if (destination[0] == 0xff) {
        return false;
    }
    if (view.protocol != ip_protocol::icmp && view.protocol != ip_protocol::icmpv6) return true;
    ByteReader icmp(packet);
    icmp.skip(view.ip_header_length);
    const std::uint8_t type = icmp.u8();
    if (icmp.is_short()) return false;
    // Only echo requests are answered: never errors (ICMP 3, 4, 5, 11, 12; ICMPv6 below 128),
    // nor neighbour discovery or multicast listener messages.
    return view.protocol == ip_protocol::icmp ? type == 8 : type == 128;
}

}  // namespace psi::packet
