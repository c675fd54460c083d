// What the packet engine counts: flows, bytes, and every packet it did not pass on, by reason.
// No addresses: the counters are safe to log and to show anyone.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/json.hpp"
#include "engine/relay.hpp"

namespace psi::engine {

enum class Drop : std::size_t {
    malformed,            // not a parsable IPv4/IPv6 packet
    fragment,             // a datagram whose fragments never all came (or overlapped)
    extension_headers,    // IPv6 extension headers
    not_tcp_or_udp,       // ICMP and other protocols: answered with admin-prohibited
    no_flow,              // a TCP segment of no known flow: answered with a reset
    held_syn,             // a SYN retransmitted while its SOCKS connect was pending
    bad_destination,      // multicast, loopback, or the TUN's own network
    nat_ports_exhausted,
    too_many_pending,     // a SYN while 2048 flows already wait for the proxy: reset
    proxy_refused,        // the SOCKS proxy could not connect: reset or ICMP to the app
    udp_unsupported,      // UDP when the proxy has no UDP ASSOCIATE (DNS still goes over TCP)
    udp_too_large,
    udp_send_failed,
    bad_reply_source,     // a UDP reply the relay says came from where none can come from
    udp_sessions_full,
    tun_write_failed,
    count_,
};

const char* drop_name(Drop reason);

struct EngineStats {
    std::uint64_t packets_read = 0;
    std::uint64_t packets_written = 0;
    bool is_fast_path_on = false;
    std::uint64_t packets_fast_path = 0;  // NATed by the kernel (TcpFastPath), never read
    std::uint64_t tcp_flows_opened = 0;
    std::size_t tcp_flows_active = 0;
    RelayCounters tcp_bytes;
    std::uint64_t udp_sessions_opened = 0;
    std::size_t udp_sessions_active = 0;
    std::uint64_t udp_datagrams_up = 0, udp_datagrams_down = 0;
    std::uint64_t udp_bytes_up = 0, udp_bytes_down = 0;
    std::uint64_t dns_queries_over_tcp = 0;
    std::uint64_t fragments = 0, datagrams_reassembled = 0;
    std::array<std::uint64_t, static_cast<std::size_t>(Drop::count_)> drops{};

    void count(Drop reason) { ++drops[static_cast<std::size_t>(reason)]; }
    json::Value to_json() const;
};

}  // namespace psi::engine
