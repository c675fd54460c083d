// libFuzzer target for what a Psiphon server sends down the packet tunnel (docs/protocol.md §6.3):
// frames, each packet then checked and its DNS rewritten by accept_inbound, and the same bytes
// as one packet from the TUN through filter_outbound. Nothing may crash; the frames taken never
// reach past the input; a packet either filter keeps still parses to the same length.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

#include "connect/packet_filter.hpp"
#include "engine/engine_context.hpp"
#include "packet/ip_address.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "packet_tunnel_fuzz: %s\n", what);
    std::abort();
}

const psi::connect::PacketTunnelAddresses& addresses() {
    static const psi::connect::PacketTunnelAddresses value{psi::packet::parse_ip_address("10.200.3.1", "fuzz"),
                                                           psi::packet::parse_ip_address("fd42:42:42::1", "fuzz"),
                                                           24,
                                                           64,
                                                           psi::packet::parse_ip_address("10.200.3.2", "fuzz"),
                                                           psi::packet::parse_ip_address("fd42:42:42::2", "fuzz")};
    return value;
}

void check_still_parses(std::span<const std::uint8_t> packet) {
    const auto parsed = psi::packet::parse_packet(packet);
    const auto* view = std::get_if<psi::packet::PacketView>(&parsed);
    if (!view || view->total_length != packet.size()) fail("a kept packet no longer parses");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::uint8_t> frames(data, data + size);
    std::size_t in_frames = 0;
    const std::size_t taken = psi::connect::take_frames(frames, [&](std::span<std::uint8_t> packet) {
        in_frames += 2 + packet.size();
        if (psi::connect::accept_inbound(packet, addresses())) check_still_parses(packet);
    });
    if (taken != in_frames || taken > size) fail("frames taken do not add up");
    if (size - taken >= 2 && ((std::size_t{frames[taken]} << 8 | frames[taken + 1]) + 2) <= size - taken)
        fail("a whole frame was left");

    std::vector<std::uint8_t> packet(data, data + size);
    if (psi::connect::filter_outbound(packet, addresses()) == psi::connect::OutboundDrop::none) {
        check_still_parses(packet);
        std::string framed;
        psi::connect::append_frame(framed, packet);
        if (framed.size() != packet.size() + 2) fail("a frame is not its packet and two bytes");
    }
    return 0;
}
