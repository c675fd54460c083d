// The server memory: what became of a tunnel through a stored server, as psi learns it from
// psi-connect, and how the store keeps it (StoredEntry's last_connected, failures,
// last_failed, last_failure; selection.hpp ranks by them). Outcomes come from an unprivileged
// process: every field is checked, and an outcome never creates an entry.
//
// The failure classes (FailureClass, store.hpp), by the name a line carries:
//   unreachable  the network said the server cannot be reached (no route, host unreachable)
//   timeout      no answer in time: the connection or a handshake stalled
//   refused      the connection was refused or reset
//   host-key     the SSH host key is not the entry's (a stale entry, or a man in the middle)
//   auth         the server refused the entry's SSH credentials
//   handshake    the obfuscation, SSH or Psiphon API handshake failed otherwise
//   dropped      the tunnel came up, then died soon after
// A failure that says nothing about the server (the machine's own network is down) is not
// an outcome: it would count against every server alike.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "core/json.hpp"
#include "servers/store.hpp"

namespace psi::servers {

struct ServerOutcome {
    std::string ip_address;  // the stored entry's ipAddress
    std::string protocol;    // the tunnel protocol dialled: "OSSH", ...
    bool is_connected = false;
    FailureClass failure = FailureClass::none;  // why, when it did not connect
    std::int64_t time = 0;                      // Unix seconds
};

// How far ahead of the store's clock an outcome's time may be: two processes' clocks read a
// moment apart. Later than that, it would keep a server first or last for as long as it likes.
inline constexpr std::int64_t max_outcome_clock_skew_seconds = 60;

// Applies `outcome` to its stored entry, or names why it does not (and changes nothing): no
// such entry, a protocol the entry does not serve, a time that is not in the past, a failure
// class that does not fit `is_connected`. A connection moves last_connected and, unless a
// failure is newer, sets failures to 0; a failure newer than the last connection adds one; the
// newest failure's time and class are kept. So an outcome that arrives late (an older one)
// never undoes a newer one.
std::optional<std::string> record_outcome(Store& store, const ServerOutcome& outcome, std::int64_t now);

// The contract between the process that learns outcomes and psi-servers record: one JSON
// object per line, "failure" only when "connected" is false:
//   {"address":"192.0.2.1","protocol":"OSSH","connected":false,"failure":"timeout","time":1796656957}
json::Value to_json(const ServerOutcome& outcome);
inline constexpr std::size_t max_outcome_line_bytes = 512;
inline constexpr std::size_t max_outcome_input_bytes = 1 << 20;  // what psi-servers record reads at most
// The outcome a line holds, or why it holds none (a reason with nothing of the line in it).
std::variant<ServerOutcome, std::string> outcome_from_json_line(std::string_view line);

struct OutcomeReport {
    std::size_t connected = 0;                   // recorded connections
    std::size_t failed = 0;                      // recorded failures
    std::map<std::string, std::size_t> skipped;  // reason -> lines that are no outcome
    std::map<std::string, std::size_t> refused;  // reason -> outcomes record_outcome turned away
    // Lines came, and not one of them was an outcome: the input is bad.
    bool is_all_skipped() const { return connected + failed == 0 && refused.empty() && !skipped.empty(); }
};

// Every non-empty line of `text` through outcome_from_json_line and record_outcome.
OutcomeReport record_outcome_lines(Store& store, std::string_view text, std::int64_t now);

}  // namespace psi::servers
