#include "engine/tcp_fast_path.hpp"

#include <bpf/bpf.h>
#include <linux/pkt_cls.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

#include "engine/engine_context.hpp"
#include "engine/tcp_fast_path_abi.h"
#include "packet/ip_address.hpp"
#include "packet/packet.hpp"
#include "packet/wire.hpp"

// The kernel's half of the NAT against the engine's own (rewrite_endpoints): the program runs on
// hand-made segments through BPF_PROG_TEST_RUN, which needs root, as the engine's loading does.
// There the kernel hands a tc program an Ethernet frame, and the checksums are complete, so every
// incremental update shows.

namespace psi::engine {

using packet::Endpoint;
using packet::IpVersion;
using packet::PacketView;
using packet::has_valid_checksums;
using packet::internet_checksum;
using packet::parse_ip_address;
using packet::parse_packet;
using packet::rewrite_endpoints;

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t ethernet_header_size = 14;
constexpr std::uint8_t tcp_ack = 0x10, tcp_push = 0x08, tcp_syn = 0x02, tcp_fin = 0x01, tcp_rst = 0x04;

Endpoint endpoint(const std::string& address, std::uint16_t port) { return {parse_ip_address(address, "test"), port}; }

void put_u16(Bytes& bytes, std::size_t offset, std::uint16_t value) {
    bytes.at(offset) = static_cast<std::uint8_t>(value >> 8);
    bytes.at(offset + 1) = static_cast<std::uint8_t>(value & 0xff);
}

// A TCP segment with `flags` and a payload, IPv4 or IPv6, with complete, valid checksums.
Bytes segment(const Endpoint& source, const Endpoint& destination, std::uint8_t flags) {
    const bool is_v4 = source.address.version == IpVersion::v4;
    const std::size_t size = packet::wire::address_size(source.address.version);
    Bytes tcp(20 + 300);
    put_u16(tcp, 0, source.port);
    put_u16(tcp, 2, destination.port);
    tcp[7] = 0x42;   // sequence
    tcp[11] = 0x17;  // acknowledgement
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    put_u16(tcp, 14, 65535);
    for (std::size_t i = 20; i < tcp.size(); ++i) tcp[i] = static_cast<std::uint8_t>(i * 7);

    Bytes pseudo(source.address.bytes.begin(), source.address.bytes.begin() + static_cast<std::ptrdiff_t>(size));
    pseudo.insert(pseudo.end(), destination.address.bytes.begin(),
                  destination.address.bytes.begin() + static_cast<std::ptrdiff_t>(size));
    // The pseudo-header's length and protocol: 0, 6, u16 length (IPv4); u32 length, 0 0 0, 6 (IPv6).
    pseudo.resize(pseudo.size() + (is_v4 ? 4 : 8));
    if (is_v4) {
        pseudo[9] = packet::ip_protocol::tcp;
        put_u16(pseudo, 10, static_cast<std::uint16_t>(tcp.size()));
    } else {
        put_u16(pseudo, 34, static_cast<std::uint16_t>(tcp.size()));
        pseudo[39] = packet::ip_protocol::tcp;
    }
    Bytes summed = pseudo;
    summed.insert(summed.end(), tcp.begin(), tcp.end());
    put_u16(tcp, 16, internet_checksum(summed));

    Bytes ip(is_v4 ? 20 : 40);
    if (is_v4) {
        ip[0] = 0x45;
        put_u16(ip, 2, static_cast<std::uint16_t>(ip.size() + tcp.size()));
        put_u16(ip, 6, 0x4000);  // don't fragment
        ip[8] = 64;
        ip[9] = packet::ip_protocol::tcp;
        std::copy_n(source.address.bytes.begin(), 4, ip.begin() + 12);
        std::copy_n(destination.address.bytes.begin(), 4, ip.begin() + 16);
        put_u16(ip, 10, internet_checksum(ip));
    } else {
        ip[0] = 0x60;
        put_u16(ip, 4, static_cast<std::uint16_t>(tcp.size()));
        ip[6] = packet::ip_protocol::tcp;
        ip[7] = 64;
        std::copy_n(source.address.bytes.begin(), 16, ip.begin() + 8);
        std::copy_n(destination.address.bytes.begin(), 16, ip.begin() + 24);
    }
    ip.insert(ip.end(), tcp.begin(), tcp.end());
    return ip;
}

struct Verdict {
    int action;
    Bytes packet;  // as the program left it, without the Ethernet header
};

Verdict run_program(const TcpFastPath& fast_path, const Bytes& packet) {
    Bytes frame(ethernet_header_size);
    frame[0] = 0x02;  // a locally administered unicast address, as the kernel wants one
    frame[6] = 0x02;
    put_u16(frame, 12, (packet.at(0) >> 4) == 4 ? 0x0800 : 0x86dd);
    frame.insert(frame.end(), packet.begin(), packet.end());
    Bytes out(frame.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<std::uint32_t>(frame.size()),
                .data_size_out = static_cast<std::uint32_t>(out.size()), .repeat = 1);
    if (const int error = bpf_prog_test_run_opts(fast_path.program(), &options); error != 0)
        throw std::runtime_error("BPF_PROG_TEST_RUN failed: " + std::to_string(error));
    out.resize(options.data_size_out);
    return {static_cast<int>(options.retval), Bytes(out.begin() + ethernet_header_size, out.end())};
}

// What the engine itself makes of `packet`: the reference the kernel must match byte for byte.
Bytes engine_rewrite(Bytes packet, const Endpoint& source, const Endpoint& destination) {
    const PacketView view = std::get<PacketView>(parse_packet(packet));
    rewrite_endpoints(packet, view, source, destination);
    return packet;
}

class TcpFastPathTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (::geteuid() != 0) GTEST_SKIP() << "loading a BPF program needs root";
        std::string why;
        fast_path_ = TcpFastPath::load(ethernet_header_size, why);
        ASSERT_TRUE(fast_path_) << why;
    }

    // The application's segment goes to F:port -> listener; the listener's comes back as the
    // destination's, both exactly as the engine writes them, with checksums that hold.
    void expect_both_directions_rewritten(const Flow& flow, const Endpoint& nat_source, const Endpoint& listener) {
        ASSERT_TRUE(fast_path_->add(flow, Flow{nat_source, listener}));
        const Bytes from_application = segment(flow.application, flow.destination, tcp_ack | tcp_push);
        const Verdict up = run_program(*fast_path_, from_application);
        EXPECT_EQ(up.action, TC_ACT_REDIRECT);
        EXPECT_EQ(up.packet, engine_rewrite(from_application, nat_source, listener));
        EXPECT_TRUE(has_valid_checksums(up.packet, std::get<PacketView>(parse_packet(up.packet))));

        const Bytes from_listener = segment(listener, nat_source, tcp_ack);
        const Verdict down = run_program(*fast_path_, from_listener);
        EXPECT_EQ(down.action, TC_ACT_REDIRECT);
        EXPECT_EQ(down.packet, engine_rewrite(from_listener, flow.destination, flow.application));
        EXPECT_TRUE(has_valid_checksums(down.packet, std::get<PacketView>(parse_packet(down.packet))));
    }

    std::unique_ptr<TcpFastPath> fast_path_;
};

TEST_F(TcpFastPathTest, RewritesIpv4SegmentsAsTheEngineDoes) {
    expect_both_directions_rewritten(Flow{endpoint("10.200.3.1", 51000), endpoint("93.184.216.34", 443)},
                                     endpoint("10.200.3.3", 20001), endpoint("10.200.3.1", 38211));
    EXPECT_EQ(fast_path_->packets(), 2u);
}

TEST_F(TcpFastPathTest, RewritesIpv6SegmentsAsTheEngineDoes) {
    expect_both_directions_rewritten(Flow{endpoint("fd42:42:42::1", 51000), endpoint("2001:db8:ffff::7", 443)},
                                     endpoint("fd42:42:42::3", 20001), endpoint("fd42:42:42::1", 38211));
}

TEST_F(TcpFastPathTest, LeavesSynFinResetAndUnknownFlowsToTheEngine) {
    const Flow flow{endpoint("10.200.3.1", 51000), endpoint("93.184.216.34", 443)};
    const Endpoint nat_source = endpoint("10.200.3.3", 20001), listener = endpoint("10.200.3.1", 38211);
    ASSERT_TRUE(fast_path_->add(flow, Flow{nat_source, listener}));
    for (const std::uint8_t flags : {tcp_syn, static_cast<std::uint8_t>(tcp_syn | tcp_ack),
                                     static_cast<std::uint8_t>(tcp_fin | tcp_ack), tcp_rst}) {
        const Bytes packet = segment(flow.application, flow.destination, flags);
        const Verdict verdict = run_program(*fast_path_, packet);
        EXPECT_EQ(verdict.action, TC_ACT_UNSPEC) << "flags " << int(flags);
        EXPECT_EQ(verdict.packet, packet);
    }
    const Bytes other_port = segment(endpoint("10.200.3.1", 51001), flow.destination, tcp_ack);
    EXPECT_EQ(run_program(*fast_path_, other_port).action, TC_ACT_UNSPEC);

    fast_path_->remove(flow, Flow{nat_source, listener});
    for (const Bytes& packet : {segment(flow.application, flow.destination, tcp_ack), segment(listener, nat_source, tcp_ack)}) {
        const Verdict verdict = run_program(*fast_path_, packet);
        EXPECT_EQ(verdict.action, TC_ACT_UNSPEC);
        EXPECT_EQ(verdict.packet, packet);
    }
    EXPECT_EQ(fast_path_->packets(), 0u);
}

TEST_F(TcpFastPathTest, LeavesFragmentsAndIpv6ExtensionHeadersToTheEngine) {
    const Flow flow{endpoint("10.200.3.1", 51000), endpoint("93.184.216.34", 443)};
    ASSERT_TRUE(fast_path_->add(flow, Flow{endpoint("10.200.3.3", 20001), endpoint("10.200.3.1", 38211)}));
    Bytes fragment = segment(flow.application, flow.destination, tcp_ack);
    fragment[6] = 0x20;  // more fragments
    EXPECT_EQ(run_program(*fast_path_, fragment).action, TC_ACT_UNSPEC);

    const Flow flow6{endpoint("fd42:42:42::1", 51000), endpoint("2001:db8:ffff::7", 443)};
    ASSERT_TRUE(fast_path_->add(flow6, Flow{endpoint("fd42:42:42::3", 20001), endpoint("fd42:42:42::1", 38211)}));
    Bytes with_options = segment(flow6.application, flow6.destination, tcp_ack);
    with_options[6] = 0;  // a hop-by-hop options header before the TCP one
    EXPECT_EQ(run_program(*fast_path_, with_options).action, TC_ACT_UNSPEC);
}

TEST_F(TcpFastPathTest, AFullTableRefusesTheNextFlowWhichStaysWithTheEngine) {
    // Each flow takes two rewrites; the n-th has an application and a NAT source of its own.
    const auto address = [](int first, std::uint32_t n) {
        return std::to_string(first + n / 65536) + "." + std::to_string(n / 256 % 256) + "." + std::to_string(n % 256);
    };
    const auto flow = [&](std::uint32_t n) {
        return Flow{endpoint("10." + address(1, n), 51000), endpoint("93.184.216.34", 443)};
    };
    const auto nat_source = [&](std::uint32_t n) { return endpoint("10." + address(101, n), 20001); };
    const Endpoint listener = endpoint("10.200.3.1", 38211);
    const std::uint32_t capacity = PSI_FAST_PATH_MAX_REWRITES / 2;
    for (std::uint32_t n = 0; n < capacity; ++n)
        ASSERT_TRUE(fast_path_->add(flow(n), Flow{nat_source(n), listener})) << n;

    EXPECT_FALSE(fast_path_->add(flow(capacity), Flow{nat_source(capacity), listener}));
    for (const Bytes& packet : {segment(flow(capacity).application, flow(capacity).destination, tcp_ack),
                                segment(listener, nat_source(capacity), tcp_ack)}) {
        const Verdict verdict = run_program(*fast_path_, packet);
        EXPECT_EQ(verdict.action, TC_ACT_UNSPEC);
        EXPECT_EQ(verdict.packet, packet);
    }
    for (const Bytes& packet : {segment(flow(1).application, flow(1).destination, tcp_ack),
                                segment(listener, nat_source(1), tcp_ack)})
        EXPECT_EQ(run_program(*fast_path_, packet).action, TC_ACT_REDIRECT);

    // Room for one rewrite only (a flow that takes flow 1's NAT leg adds one): the refused flow's
    // first rewrite, which went in, is taken out again.
    fast_path_->remove(flow(0), Flow{nat_source(0), listener});
    ASSERT_TRUE(fast_path_->add(flow(capacity + 1), Flow{nat_source(1), listener}));
    EXPECT_FALSE(fast_path_->add(flow(capacity), Flow{nat_source(capacity), listener}));
    EXPECT_EQ(run_program(*fast_path_, segment(listener, nat_source(capacity), tcp_ack)).action, TC_ACT_UNSPEC);

    // A flow the engine forgets makes room again.
    fast_path_->remove(flow(capacity + 1), Flow{nat_source(1), listener});
    expect_both_directions_rewritten(flow(capacity), nat_source(capacity), listener);
}

}  // namespace
}  // namespace psi::engine
