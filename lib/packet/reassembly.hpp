// IP fragments from applications: a UDP datagram larger than the TUN's MTU leaves the kernel in
// pieces (IPv4 fragments, or IPv6 with a Fragment header right after the fixed header). They
// are put back together here, so the UDP relay sees whole datagrams. Bounded: at most 64
// datagrams in progress, 10 s each, 65,535 bytes; overlapping pieces drop the whole datagram
// (RFC 5722), as does anything malformed.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "packet/packet.hpp"

namespace psi::packet {

class Reassembler {
public:
    using Clock = std::chrono::steady_clock;

    // Whether `packet` is a fragment this reassembler takes (IPv4 with MF or an offset; IPv6 whose
    // first next header is Fragment).
    static bool is_fragment(std::span<const std::uint8_t> packet);

    // Takes one fragment. Once every piece of its datagram has arrived, returns that datagram as
    // one unfragmented IP packet (IPv4 without options, or IPv6 without extension headers).
    std::optional<std::vector<std::uint8_t>> add(std::span<const std::uint8_t> packet, Clock::time_point now);

    // Forgets datagrams whose pieces stopped coming; returns how many.
    std::size_t expire(Clock::time_point now);
    std::size_t pending() const { return pending_.size(); }

private:
    struct Key {
        IpAddress source, destination;
        std::uint32_t id = 0;
        std::uint8_t protocol = 0;
        friend auto operator<=>(const Key&, const Key&) = default;
    };
    struct Pending {
        Clock::time_point started;
        std::vector<std::uint8_t> payload;                       // the datagram, as far as known
        std::vector<std::pair<std::size_t, std::size_t>> pieces;  // [begin, end) received
        std::optional<std::size_t> length;                       // known once the last piece came
    };

    std::map<Key, Pending> pending_;
};

}  // namespace psi::packet
