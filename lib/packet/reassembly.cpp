#include "packet/reassembly.hpp"

#include <algorithm>

#include "core/byte_reader.hpp"
#include "packet/wire.hpp"

namespace psi::packet {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_pending = 64;
constexpr auto lifetime = 10s;
constexpr std::size_t max_payload = 65535 - wire::ipv4_header_size;  // what one IPv4 packet carries
constexpr std::uint8_t ipv6_fragment_header = 44;
constexpr std::size_t ipv6_fragment_header_size = 8;

using wire::read_address;
using wire::store_u16;

struct Piece {
    IpVersion version = IpVersion::v4;
    IpAddress source, destination;
    std::uint32_t id = 0;
    std::uint8_t protocol = 0;
    std::size_t offset = 0;
    bool has_more = false;
    std::span<const std::uint8_t> data;
};

// The IPv4 header's fields, or nullopt when they do not describe a datagram within `packet`.
std::optional<Piece> read_ipv4_piece(std::span<const std::uint8_t> packet) {
    Piece piece;
    ByteReader header(packet);
    const std::size_t header_length = static_cast<std::size_t>(header.u8() & 0x0f) * 4;
    header.skip(1);  // type of service
    const std::size_t total = header.u16();
    piece.id = header.u16();
    const std::uint16_t fragment = header.u16();
    header.skip(1);  // time to live
    piece.protocol = header.u8();
    header.skip(2);  // header checksum
    read_address(header, IpVersion::v4, piece.source);
    read_address(header, IpVersion::v4, piece.destination);
    if (header.is_short() || header_length < wire::ipv4_header_size || total < header_length || total > packet.size())
        return std::nullopt;
    piece.version = IpVersion::v4;
    piece.offset = static_cast<std::size_t>(fragment & 0x1fff) * 8;
    piece.has_more = (fragment & 0x2000) != 0;
    header.skip(header_length - wire::ipv4_header_size);  // options
    piece.data = header.take(total - header_length);
    return piece;
}

// The IPv6 header and the fragment header right after it (no other extension header before it).
std::optional<Piece> read_ipv6_piece(std::span<const std::uint8_t> packet) {
    Piece piece;
    ByteReader header(packet);
    header.skip(4);  // version, traffic class, flow label
    const std::size_t total = wire::ipv6_header_size + header.u16();
    const std::uint8_t next_header = header.u8();
    header.skip(1);  // hop limit
    read_address(header, IpVersion::v6, piece.source);
    read_address(header, IpVersion::v6, piece.destination);
    piece.protocol = header.u8();
    header.skip(1);  // reserved
    const std::uint16_t fragment = header.u16();
    piece.id = header.u32();
    if (header.is_short() || next_header != ipv6_fragment_header) return std::nullopt;
    if (total < header.consumed() || total > packet.size()) return std::nullopt;
    if (piece.protocol == ipv6_fragment_header) return std::nullopt;  // a fragment of a fragment
    piece.version = IpVersion::v6;
    piece.offset = static_cast<std::size_t>(fragment >> 3) * 8;
    piece.has_more = (fragment & 1) != 0;
    piece.data = header.take(total - header.consumed());
    return piece;
}

// The fragment's fields, or nullopt when it is not a well-formed fragment.
std::optional<Piece> read_piece(std::span<const std::uint8_t> packet) {
    const int version = ByteReader(packet).peek_u8() >> 4;
    std::optional<Piece> piece;
    if (version == 4) piece = read_ipv4_piece(packet);
    else if (version == 6) piece = read_ipv6_piece(packet);
    if (!piece) return std::nullopt;
    // Every piece but the last carries a multiple of 8 bytes.
    if ((piece->has_more && piece->data.size() % 8 != 0) || piece->data.empty()) return std::nullopt;
    if (piece->offset + piece->data.size() > max_payload) return std::nullopt;
    return piece;
}

std::vector<std::uint8_t> whole_packet(const Piece& first, std::span<const std::uint8_t> payload) {
    std::vector<std::uint8_t> packet;
    if (first.version == IpVersion::v4) {
        packet.assign(20, 0);
        packet[0] = 0x45;
        store_u16(packet, 2, static_cast<std::uint16_t>(20 + payload.size()));
        store_u16(packet, 4, static_cast<std::uint16_t>(first.id));
        packet[8] = 64;
        packet[9] = first.protocol;
        std::copy_n(first.source.bytes.begin(), 4, packet.begin() + 12);
        std::copy_n(first.destination.bytes.begin(), 4, packet.begin() + 16);
        store_u16(packet, 10, internet_checksum(std::span<const std::uint8_t>(packet).first(20)));
    } else {
        packet.assign(40, 0);
        packet[0] = 0x60;
        store_u16(packet, 4, static_cast<std::uint16_t>(payload.size()));
        packet[6] = first.protocol;
        packet[7] = 64;
        std::copy_n(first.source.bytes.begin(), 16, packet.begin() + 8);
        std::copy_n(first.destination.bytes.begin(), 16, packet.begin() + 24);
    }
    packet.insert(packet.end(), payload.begin(), payload.end());
    return packet;
}

}  // namespace

bool Reassembler::is_fragment(std::span<const std::uint8_t> packet) {
    ByteReader header(packet);
    const std::uint8_t version = header.u8() >> 4;
    if (version == 4) {
        header.skip(5);  // up to the flags and fragment offset
        const std::uint16_t fragment = header.u16();
        header.skip(wire::ipv4_header_size - 8);
        return !header.is_short() && (fragment & 0x3fff) != 0;
    }
    header.skip(5);  // up to the next header
    const std::uint8_t next_header = header.u8();
    header.skip(wire::ipv6_header_size + ipv6_fragment_header_size - 7);
    return version == 6 && !header.is_short() && next_header == ipv6_fragment_header;
}

std::optional<std::vector<std::uint8_t>> Reassembler::add(std::span<const std::uint8_t> packet, Clock::time_point now) {
    const auto piece = read_piece(packet);
    if (!piece) return std::nullopt;
    // An IPv6 datagram in one piece (an atomic fragment, RFC 6946) is whole already.
    if (piece->offset == 0 && !piece->has_more) return whole_packet(*piece, piece->data);

    const Key key{piece->source, piece->destination, piece->id, piece->protocol};
    auto found = pending_.find(key);
    if (found == pending_.end()) {
        expire(now);
        if (pending_.size() >= max_pending) {
            auto oldest = std::min_element(pending_.begin(), pending_.end(), [](const auto& a, const auto& b) {
                return a.second.started < b.second.started;
            });
            pending_.erase(oldest);
        }
        found = pending_.emplace(key, Pending{now, {}, {}, std::nullopt}).first;
    }
    Pending& datagram = found->second;
    const std::size_t begin = piece->offset, end = piece->offset + piece->data.size();
    for (const auto& [other_begin, other_end] : datagram.pieces)
        if (begin < other_end && other_begin < end) {  // overlap: RFC 5722, drop it all
            pending_.erase(found);
            return std::nullopt;
        }
    if (!piece->has_more) {
        if (datagram.length || end < datagram.payload.size()) {
            pending_.erase(found);
            return std::nullopt;
        }
        datagram.length = end;
    } else if (datagram.length && end > *datagram.length) {
        pending_.erase(found);
        return std::nullopt;
    }
    if (datagram.payload.size() < end) datagram.payload.resize(end);
    std::copy(piece->data.begin(), piece->data.end(), datagram.payload.begin() + static_cast<std::ptrdiff_t>(begin));
    datagram.pieces.emplace_back(begin, end);

    if (!datagram.length) return std::nullopt;
    std::size_t covered = 0;
    for (const auto& [piece_begin, piece_end] : datagram.pieces) covered += piece_end - piece_begin;
    if (covered != *datagram.length) return std::nullopt;  // no overlaps, so equal means complete
    std::vector<std::uint8_t> whole = whole_packet(*piece, datagram.payload);
    pending_.erase(found);
    return whole;
}

std::size_t Reassembler::expire(Clock::time_point now) {
    return std::erase_if(pending_, [&](const auto& entry) { return now - entry.second.started >= lifetime; });
}

}  // namespace psi::packet
