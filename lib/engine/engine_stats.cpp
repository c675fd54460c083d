#include "engine/engine_stats.hpp"

namespace psi::engine {

const char* drop_name(Drop reason) {
    switch (reason) {
        case Drop::malformed: return "malformed";
        case Drop::fragment: return "fragment";
        case Drop::extension_headers: return "extensionHeaders";
        case Drop::not_tcp_or_udp: return "notTcpOrUdp";
        case Drop::no_flow: return "noFlow";
        case Drop::held_syn: return "heldSyn";
        case Drop::bad_destination: return "badDestination";
        case Drop::nat_ports_exhausted: return "natPortsExhausted";
        case Drop::too_many_pending: return "tooManyPending";
        case Drop::proxy_refused: return "proxyRefused";
        case Drop::udp_unsupported: return "udpUnsupported";
        case Drop::udp_too_large: return "udpTooLarge";
        case Drop::udp_send_failed: return "udpSendFailed";
        case Drop::bad_reply_source: return "badReplySource";
        case Drop::udp_sessions_full: return "udpSessionsFull";
        case Drop::tun_write_failed: return "tunWriteFailed";
        case Drop::count_: break;
    }
    return "?";
}

json::Value EngineStats::to_json() const {
    json::Object dropped;
    for (std::size_t i = 0; i < drops.size(); ++i) dropped.emplace_back(drop_name(static_cast<Drop>(i)), drops[i]);
    return json::Object{
        {"packets", json::Object{{"read", packets_read}, {"written", packets_written}}},
        {"fastPath", json::Object{{"on", is_fast_path_on}, {"packets", packets_fast_path}}},
        {"tcp", json::Object{{"flowsOpened", tcp_flows_opened},
                             {"flowsActive", static_cast<std::uint64_t>(tcp_flows_active)},
                             {"bytesUp", tcp_bytes.up},
                             {"bytesDown", tcp_bytes.down}}},
        {"udp", json::Object{{"sessionsOpened", udp_sessions_opened},
                             {"sessionsActive", static_cast<std::uint64_t>(udp_sessions_active)},
                             {"datagramsUp", udp_datagrams_up},
                             {"datagramsDown", udp_datagrams_down},
                             {"bytesUp", udp_bytes_up},
                             {"bytesDown", udp_bytes_down}}},
        {"dnsQueriesOverTcp", dns_queries_over_tcp},
        {"fragments", json::Object{{"received", fragments}, {"reassembled", datagrams_reassembled}}},
        {"dropped", std::move(dropped)},
    };
}

}  // namespace psi::engine
