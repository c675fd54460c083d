// psi-connect's notices: one JSON object per line on stdout, in the format of Psiphon's own
// console client (docs/protocol.md §7), so scripts written for Psiphon keep working:
//   {"data":{...},"noticeType":"Tunnels","timestamp":"2006-01-02T15:04:05.000Z"}
// This header is the contract between psi-connect, which writes them, and psi up's supervisor,
// which reads them: each notice is a struct, and its type name and keys are written only in
// notice.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/json.hpp"

namespace psi::connect {

namespace notice {

struct ListeningSocksProxyPort {
    std::int64_t port = 0;
};
struct ListeningHttpProxyPort {
    std::int64_t port = 0;
};
// 1 once a tunnel carries traffic (with the packet tunnel: once that runs), 0 when it is lost.
struct Tunnels {
    std::int64_t count = 0;
};
struct ActiveTunnel {
    std::string protocol;
};
struct ConnectedServerRegion {
    std::string server_region;
};
struct ClientRegion {
    std::string region;
};
struct Homepage {
    std::string url;
};
struct PacketTunnel {
    enum class State { up, refused };
    State state = State::up;
    std::string device;  // with up
};
// The packet tunnel's counters; also what psi status shows of them.
struct PacketTunnelStats {
    std::int64_t packets_up = 0, packets_down = 0;
    std::int64_t bytes_up = 0, bytes_down = 0;
    std::int64_t dropped_up = 0, refused_down = 0, unwritten_down = 0;
    friend bool operator==(const PacketTunnelStats&, const PacketTunnelStats&) = default;
};
struct Warning {
    std::string message;
};
struct Error {
    std::string message;
};
struct Exiting {};
// psi's own: what became of one candidate, for the server memory (psi-servers record). One per
// failed candidate after each round, one for the server a tunnel came up through, and one
// (failure "dropped") when that tunnel dies soon after.
struct ServerOutcome {
    std::string address;  // the entry's ipAddress
    std::string protocol;
    bool is_connected = false;
    std::string failure;  // a failure class of psi-servers(8), when not connected
};

}  // namespace notice

using Notice = std::variant<notice::ListeningSocksProxyPort, notice::ListeningHttpProxyPort, notice::Tunnels,
                            notice::ActiveTunnel, notice::ConnectedServerRegion, notice::ClientRegion,
                            notice::Homepage, notice::PacketTunnel, notice::PacketTunnelStats, notice::Warning,
                            notice::Error, notice::Exiting, notice::ServerOutcome>;

// Keys in Go's sorted order and Go's escaping (encoding/json), UTC with milliseconds.
std::string format_notice(const Notice& notice,
                          std::chrono::system_clock::time_point when = std::chrono::system_clock::now());

// A line as psi-connect writes it, or nothing: not JSON, a type psi does not read, a field
// missing or of the wrong type. The strings are as sent (the reader makes them printable).
std::optional<Notice> parse_notice(std::string_view line);

// The counters as JSON, with the notice's keys (psi up's state file keeps them so).
json::Value to_json(const notice::PacketTunnelStats& stats);
notice::PacketTunnelStats packet_tunnel_stats_from(const json::Value& object);

// Writes notices, one flushed line each, so a reader of the pipe sees them at once.
class NoticeWriter {
public:
    explicit NoticeWriter(std::FILE* output = stdout) : output_(output) {}
    void emit(const Notice& notice);

private:
    std::FILE* output_;
};

}  // namespace psi::connect
