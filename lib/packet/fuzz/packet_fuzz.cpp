// libFuzzer target for the packet parser, the NAT rewrite (docs/packet-engine.md §3.2-3.4) and the packets the
// engine answers with. The input is read as one packet from the TUN. Nothing may crash; a parsed
// view must describe bytes inside the packet; a TCP or UDP packet rewritten to other endpoints
// must parse to those endpoints and to nothing else new, keep valid checksums valid, come back
// byte for byte when rewritten back, and, once its checksums are made right, match a full
// recomputation exactly, in complete and in partial (vnet NEEDS_CSUM) mode. Every answer (an ICMP
// unreachable, a TCP reset) must parse, carry valid checksums and stay within its size limit.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

#include "core/error.hpp"
#include "packet/packet.hpp"
#include "packet/packet_builder.hpp"
#include "packet/reassembly.hpp"

namespace {

using namespace psi::packet;
using Bytes = std::vector<std::uint8_t>;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "packet_fuzz: %s\n", what);
    std::abort();
}

Endpoint fixed_endpoint(IpVersion version, bool is_source) {
    Endpoint endpoint;
    endpoint.address.version = version;
    if (version == IpVersion::v4)
        endpoint.address.bytes = {10, 200, 3, static_cast<std::uint8_t>(is_source ? 2 : 1)};
    else
        endpoint.address.bytes = {0xfd, 0x42, 0, 0x42, 0, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, static_cast<std::uint8_t>(is_source ? 2 : 1)};
    endpoint.port = is_source ? 20001 : 38211;
    return endpoint;
}

PacketView parse_or_fail(const Bytes& packet, const char* what) {
    const auto result = parse_packet(packet);
    if (!std::holds_alternative<PacketView>(result)) fail(what);
    return std::get<PacketView>(result);
}

std::size_t address_size(IpVersion version) { return version == IpVersion::v4 ? 4 : 16; }
std::size_t source_offset(IpVersion version) { return version == IpVersion::v4 ? 12 : 8; }

std::size_t transport_checksum_offset(const PacketView& view) {
    return view.ip_header_length + (view.protocol == ip_protocol::tcp ? 16 : 6);
}

std::uint16_t get_u16(const Bytes& bytes, std::size_t offset) {
    return static_cast<std::uint16_t>(bytes.at(offset) << 8 | bytes.at(offset + 1));
}

void set_u16(Bytes& bytes, std::size_t offset, std::uint16_t value) {
    bytes.at(offset) = static_cast<std::uint8_t>(value >> 8);
    bytes.at(offset + 1) = static_cast<std::uint8_t>(value & 0xff);
}

void check_view(const PacketView& view, std::size_t size) {
    if (view.total_length > size) fail("total length beyond the packet");
    if (view.ip_header_length > view.total_length) fail("IP header beyond the total length");
    if (view.version == IpVersion::v4 && (view.ip_header_length < 20 || view.ip_header_length > 60 ||
                                          view.ip_header_length % 4 != 0))
        fail("bad IPv4 header length");
    if (view.version == IpVersion::v6 && view.ip_header_length != 40) fail("bad IPv6 header length");
    if (view.payload_length > view.total_length - view.ip_header_length) fail("payload beyond the packet");
    const std::size_t transport_length = view.total_length - view.ip_header_length - view.payload_length;
    if (view.protocol == ip_protocol::tcp) {
        if (transport_length < 20 || transport_length > 60 || transport_length % 4 != 0) fail("bad TCP header length");
    } else if (view.protocol == ip_protocol::udp) {
        if (transport_length != 8) fail("bad UDP header length");
    } else {
        if (transport_length != 0) fail("a transport header without TCP or UDP");
        if (view.source.port != 0 || view.destination.port != 0) fail("ports without TCP or UDP");
    }
    if (view.protocol != ip_protocol::tcp &&
        (view.tcp_flags != 0 || view.tcp_sequence != 0 || view.tcp_acknowledgement != 0))
        fail("TCP fields without TCP");
    if (view.source.address.version != view.version || view.destination.address.version != view.version)
        fail("addresses of the other family");
}

// Writes the endpoints into the packet as they are, checksums untouched.
void write_endpoints(Bytes& packet, const PacketView& view, const Endpoint& source, const Endpoint& destination) {
    const std::size_t size = address_size(view.version);
    for (std::size_t i = 0; i < size; ++i) {
        packet.at(source_offset(view.version) + i) = source.address.bytes.at(i);
        packet.at(source_offset(view.version) + size + i) = destination.address.bytes.at(i);
    }
    set_u16(packet, view.ip_header_length, source.port);
    set_u16(packet, view.ip_header_length + 2, destination.port);
}

// Every checksum computed in full from the bytes; a UDP/IPv4 checksum of 0 (none) stays 0.
void recompute_checksums(Bytes& packet, const PacketView& view) {
    const std::span<const std::uint8_t> bytes(packet);
    if (view.version == IpVersion::v4) {
        set_u16(packet, 10, 0);
        set_u16(packet, 10, internet_checksum(bytes.first(view.ip_header_length)));
    }
    const std::size_t checksum_offset = transport_checksum_offset(view);
    if (view.protocol == ip_protocol::udp && view.version == IpVersion::v4 && get_u16(packet, checksum_offset) == 0)
        return;
    std::uint32_t pseudo_header = view.protocol;
    for (std::size_t i = 0; i < 2 * address_size(view.version); i += 2)
        pseudo_header += get_u16(packet, source_offset(view.version) + i);
    const std::size_t segment_length = view.total_length - view.ip_header_length;
    pseudo_header += static_cast<std::uint32_t>(segment_length);
    set_u16(packet, checksum_offset, 0);
    std::uint16_t checksum =
        internet_checksum(bytes.subspan(view.ip_header_length, segment_length), pseudo_header);
    if (view.protocol == ip_protocol::udp && checksum == 0) checksum = 0xffff;
    set_u16(packet, checksum_offset, checksum);
}

bool is_checksum_offset(const PacketView& view, std::size_t offset) {
    const std::size_t transport = transport_checksum_offset(view);
    return (view.version == IpVersion::v4 && (offset == 10 || offset == 11)) || offset == transport ||
           offset == transport + 1;
}

// 0 and ffff are the same number in one's complement.
bool same_checksum(std::uint16_t a, std::uint16_t b) { return a == b || (a ^ b) == 0xffff; }

void check_rewrite(const Bytes& original, const PacketView& view) {
    const Endpoint source = fixed_endpoint(view.version, true);
    const Endpoint destination = fixed_endpoint(view.version, false);

    Bytes rewritten = original;
    rewrite_endpoints(rewritten, view, source, destination);
    const PacketView after = parse_or_fail(rewritten, "the rewritten packet does not parse");
    if (after.source != source || after.destination != destination) fail("the rewritten endpoints differ");
    if (after.version != view.version || after.protocol != view.protocol ||
        after.ip_header_length != view.ip_header_length || after.total_length != view.total_length ||
        after.tcp_flags != view.tcp_flags || after.tcp_sequence != view.tcp_sequence ||
        after.tcp_acknowledgement != view.tcp_acknowledgement || after.payload_length != view.payload_length)
        fail("the rewrite changed more than the endpoints");

    Bytes expected = original;
    write_endpoints(expected, view, source, destination);
    for (std::size_t i = 0; i < original.size(); ++i)
        if (!is_checksum_offset(view, i) && rewritten.at(i) != expected.at(i)) fail("a byte outside the endpoints changed");
    const std::size_t checksum_offset = transport_checksum_offset(view);
    if (view.protocol == ip_protocol::udp && view.version == IpVersion::v4 && get_u16(original, checksum_offset) == 0 &&
        get_u16(rewritten, checksum_offset) != 0)
        fail("a UDP/IPv4 datagram without a checksum got one");

    if (has_valid_checksums(original, view) && !has_valid_checksums(rewritten, after))
        fail("valid checksums became invalid");

    // Back to the original endpoints: the original bytes again, up to the two zeros.
    Bytes back = rewritten;
    rewrite_endpoints(back, after, view.source, view.destination);
    for (std::size_t i = 0; i < original.size(); ++i)
        if (!is_checksum_offset(view, i) && back.at(i) != original.at(i)) fail("rewriting back changed a byte");
    if (!same_checksum(get_u16(back, checksum_offset), get_u16(original, checksum_offset)) ||
        (view.version == IpVersion::v4 && !same_checksum(get_u16(back, 10), get_u16(original, 10))))
        fail("rewriting back changed a checksum");

    // With right checksums, the incremental update is a full recomputation, byte for byte.
    Bytes fixed = original;
    recompute_checksums(fixed, view);
    if (!has_valid_checksums(fixed, view)) fail("recomputed checksums are not valid");
    Bytes incremental = fixed;
    rewrite_endpoints(incremental, view, source, destination);
    Bytes full = fixed;
    write_endpoints(full, view, source, destination);
    recompute_checksums(full, view);
    if (incremental != full) fail("the incremental update differs from a full recomputation");
}

// The kernel's completion of a partial checksum: the segment's sum over what the field holds.
void complete_partial_checksum(Bytes& packet, const PacketView& view) {
    const std::size_t segment_length = view.total_length - view.ip_header_length;
    const std::uint16_t checksum =
        internet_checksum(std::span<const std::uint8_t>(packet).subspan(view.ip_header_length, segment_length));
    set_u16(packet, transport_checksum_offset(view), checksum);
}

void check_partial_rewrite(const Bytes& original, const PacketView& view) {
    if (view.protocol == ip_protocol::udp) return;  // UDP from applications is never NAT'd
    // The field as the kernel leaves it for CHECKSUM_PARTIAL: the pseudo-header's sum, not inverted.
    Bytes partial = original;
    recompute_checksums(partial, view);
    set_u16(partial, transport_checksum_offset(view), 0);
    std::uint32_t pseudo_header = view.protocol + static_cast<std::uint32_t>(view.total_length - view.ip_header_length);
    for (std::size_t i = 0; i < 2 * address_size(view.version); i += 2)
        pseudo_header += get_u16(partial, source_offset(view.version) + i);
    while (pseudo_header >> 16) pseudo_header = (pseudo_header & 0xffff) + (pseudo_header >> 16);
    set_u16(partial, transport_checksum_offset(view), static_cast<std::uint16_t>(pseudo_header));
    rewrite_endpoints(partial, view, fixed_endpoint(view.version, true), fixed_endpoint(view.version, false),
                      TransportChecksum::partial);
    const PacketView after = parse_or_fail(partial, "the partially rewritten packet does not parse");
    complete_partial_checksum(partial, after);
    if (!has_valid_checksums(partial, after)) fail("a completed partial checksum is not valid after the rewrite");
}

void check_answer(const Bytes& answer, const PacketView& asked, std::uint8_t protocol, std::size_t limit) {
    const PacketView view = parse_or_fail(answer, "an answer does not parse");
    if (view.protocol != protocol) fail("an answer of the wrong protocol");
    if (view.source.address != asked.destination.address || view.destination.address != asked.source.address)
        fail("an answer not from the destination to the source");
    if (answer.size() > limit) fail("an answer over its size limit");
    if (protocol == ip_protocol::icmpv6 || protocol == ip_protocol::icmp) {
        // ICMPv6's checksum covers the pseudo-header; ICMP's only the message.
        const std::span<const std::uint8_t> message = std::span<const std::uint8_t>(answer).subspan(view.ip_header_length);
        std::uint32_t partial = 0;
        if (protocol == ip_protocol::icmpv6) {
            partial = protocol + static_cast<std::uint32_t>(message.size());
            for (std::size_t i = 0; i < 32; i += 2) partial += get_u16(answer, 8 + i);
        }
        if (internet_checksum(message, partial) != 0) fail("an ICMP answer with a bad checksum");
        if (view.version == IpVersion::v4 && internet_checksum(std::span<const std::uint8_t>(answer).first(20)) != 0)
            fail("an ICMP answer with a bad IPv4 header checksum");
    } else if (!has_valid_checksums(answer, view)) {
        fail("a reset with bad checksums");
    }
}

void check_answers(const Bytes& packet, const PacketView& view) {
    may_answer_with_icmp_error(packet, view);
    const bool is_v4 = view.version == IpVersion::v4;
    for (const Unreachable reason : {Unreachable::network, Unreachable::host, Unreachable::port,
                                     Unreachable::administratively_prohibited})
        check_answer(build_unreachable(packet, view, reason), view, is_v4 ? ip_protocol::icmp : ip_protocol::icmpv6,
                     is_v4 ? 576 : 1280);
    if (view.protocol == ip_protocol::tcp) {
        const Bytes reset = build_tcp_reset(view);
        check_answer(reset, view, ip_protocol::tcp, 60);
        if (!(parse_or_fail(reset, "a reset does not parse").tcp_flags & tcp_flag::rst)) fail("a reset without RST");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Bytes packet(data, data + size);
    // Fragments: kept across inputs, so pieces of earlier inputs meet later ones. A datagram put
    // back together must be one whole packet that parses.
    static Reassembler reassembler;
    static Reassembler::Clock::time_point now{};
    now += std::chrono::milliseconds(100);
    if (Reassembler::is_fragment(packet)) {
        if (const auto whole = reassembler.add(packet, now)) {
            if (Reassembler::is_fragment(*whole)) fail("a reassembled datagram is still a fragment");
            if (!std::holds_alternative<PacketView>(parse_packet(*whole)) &&
                std::get<PacketError>(parse_packet(*whole)) != PacketError::bad_transport_header &&
                std::get<PacketError>(parse_packet(*whole)) != PacketError::extension_headers &&
                std::get<PacketError>(parse_packet(*whole)) != PacketError::truncated)
                fail("a reassembled datagram does not parse as one whole packet");
        }
        reassembler.expire(now);
    }
    const auto result = parse_packet(packet);
    if (const auto* error = std::get_if<PacketError>(&result)) {
        if (packet_error_name(*error)[0] == '?') fail("an error without a name");
        return 0;
    }
    const PacketView& view = std::get<PacketView>(result);
    check_view(view, size);
    has_valid_checksums(packet, view);
    try {
        check_answers(packet, view);
        if (view.protocol != ip_protocol::tcp && view.protocol != ip_protocol::udp) return 0;
        check_rewrite(packet, view);
        check_partial_rewrite(packet, view);
    } catch (const psi::Error& error) {
        // A view from parse_packet always fits its packet.
        std::fprintf(stderr, "packet_fuzz: %s\n", error.what());
        std::abort();
    }
    return 0;
}
