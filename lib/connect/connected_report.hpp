// The psiphon-connected request (docs/protocol.md §5.3): once per tunnel, a few seconds apart until
// the server takes it, then again every 24 hours, with the connected_timestamp of the last
// reply (or "None"). The timestamp is kept for this run only: a new psi-connect starts with
// "None", so the server cannot link two runs of the same machine by it.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "connect/psiphon_api.hpp"
#include "connect/tunnel_session.hpp"

namespace psi::connect {

struct ConnectedSchedule {
    std::chrono::seconds retry{5};
    std::chrono::seconds repeat{24 * 60 * 60};
};

class ConnectedReport {
public:
    ConnectedReport(ClientIdentity identity, ConnectedSchedule schedule = {});

    // A new tunnel: the request is due at once on it.
    void start(TunnelSession& session, std::string relay_protocol, std::int64_t establishment_ms);
    // Sends the request when it is due and none is on its way; the owner calls it about once a
    // second with the tunnel that start() was given.
    void tick(TunnelSession& session);

private:
    void on_reply(std::uint64_t tunnel, const std::optional<std::string>& reply);

    ClientIdentity identity_;
    ConnectedSchedule schedule_;
    std::string relay_protocol_;
    std::int64_t establishment_ms_ = 0;
    std::string last_connected_;  // "" until a server gave one
    std::chrono::steady_clock::time_point due_{};
    std::uint64_t tunnel_ = 0;  // which start() a reply belongs to
    bool is_pending_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// A connected_timestamp worth sending back: RFC 3339 as Psiphon writes it
// ("2026-11-23T15:00:00Z", fractions and offsets allowed), at most 40 characters.
bool is_connected_timestamp(const std::string& text);

}  // namespace psi::connect
