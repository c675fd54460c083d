#include "tun/reassembly.hpp"

#include <algorithm>

#include "tun/wire.hpp"

namespace psi::tun {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_pending = 64;
constexpr auto lifetime = 10s;
constexpr std::size_t max_payload = 65535 - wire::ipv4_header_size;  // what one IPv4 packet carries
constexpr std::uint8_t ipv6_fragment_header = 44;

using wire::load_u16;
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

// The fragment's fields, or nullopt when it is not a well-formed fragment.
std::optional<Piece> read_piece(std::span<const std::uint8_t> packet) {
    Piece piece;
    if (packet.size() < 20) return std::nullopt;
    const int version = packet[0] >> 4;
    if (version == 4) {
        const std::size_t header = static_cast<std::size_t>(packet[0] & 0x0f) * 4;
        const std::size_t total = load_u16(packet, 2);
        if (header < 20 || total < header || total > packet.size()) return std::nullopt;
        const std::uint16_t fragment = load_u16(packet, 6);
        piece.version = IpVersion::v4;
        piece.id = load_u16(packet, 4);
        piece.protocol = packet[9];
        piece.offset = static_cast<std::size_t>(fragment & 0x1fff) * 8;
        piece.has_more = (fragment & 0x2000) != 0;
        piece.source.version = piece.destination.version = IpVersion::v4;
        std::copy_n(packet.begin() + 12, 4, piece.source.bytes.begin());
        std::copy_n(packet.begin() + 16, 4, piece.destination.bytes.begin());
        piece.data = packet.subspan(header, total - header);
    } else if (version == 6) {
        if (packet.size() < 48 || packet[6] != ipv6_fragment_header) return std::nullopt;
        const std::size_t total = 40 + static_cast<std::size_t>(load_u16(packet, 4));
        if (total < 48 || total > packet.size()) return std::nullopt;
        const std::uint16_t fragment = load_u16(packet, 42);
        piece.version = IpVersion::v6;
        piece.protocol = packet[40];
        if (piece.protocol == ipv6_fragment_header) return std::nullopt;  // a fragment of a fragment
        piece.offset = static_cast<std::size_t>(fragment >> 3) * 8;
        piece.has_more = (fragment & 1) != 0;
        piece.id = static_cast<std::uint32_t>(load_u16(packet, 44)) << 16 | load_u16(packet, 46);
        piece.source.version = piece.destination.version = IpVersion::v6;
        std::copy_n(packet.begin() + 8, 16, piece.source.bytes.begin());
        std::copy_n(packet.begin() + 24, 16, piece.destination.bytes.begin());
        piece.data = packet.subspan(48, total - 48);
    } else {
        return std::nullopt;
    }
    // Every piece but the last carries a multiple of 8 bytes.
    if ((piece.has_more && piece.data.size() % 8 != 0) || piece.data.empty()) return std::nullopt;
    if (piece.offset + piece.data.size() > max_payload) return std::nullopt;
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
    if (packet.size() < 20) return false;
    if (packet[0] >> 4 == 4) return (load_u16(packet, 6) & 0x3fff) != 0;
    return packet[0] >> 4 == 6 && packet.size() >= 48 && packet[6] == ipv6_fragment_header;
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

}  // namespace psi::tun
