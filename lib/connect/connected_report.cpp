#include "connect/connected_report.hpp"

#include <regex>

#include "core/error.hpp"
#include "core/log.hpp"

namespace psi::connect {

using Clock = std::chrono::steady_clock;

bool is_connected_timestamp(const std::string& text) {
    static const std::regex rfc3339(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2}))");
    return text.size() <= 40 && std::regex_match(text, rfc3339);
}

ConnectedReport::ConnectedReport(ClientIdentity identity, ConnectedSchedule schedule)
    : identity_(std::move(identity)), schedule_(schedule) {}

void ConnectedReport::start(TunnelSession& session, std::string relay_protocol, std::int64_t establishment_ms) {
    relay_protocol_ = std::move(relay_protocol);
    establishment_ms_ = establishment_ms;
    ++tunnel_;
    is_pending_ = false;
    due_ = Clock::now();
    tick(session);
}

void ConnectedReport::tick(TunnelSession& session) {
    if (is_pending_ || session.has_failed() || Clock::now() < due_) return;
    is_pending_ = true;
    session.send_request("psiphon-connected", connected_request(identity_, relay_protocol_, last_connected_, establishment_ms_),
                         [this, tunnel = tunnel_, alive = std::weak_ptr<bool>(alive_)](std::optional<std::string> reply) {
                             if (!alive.expired()) on_reply(tunnel, reply);
                         });
}

void ConnectedReport::on_reply(std::uint64_t tunnel, const std::optional<std::string>& reply) {
    if (tunnel != tunnel_) return;  // for a tunnel gone; start() has begun anew
    is_pending_ = false;
    std::string why;
    if (!reply) {
        why = "the server refused it";
    } else {
        try {
            const std::string timestamp = parse_connected_timestamp(*reply);
            if (is_connected_timestamp(timestamp)) {
                last_connected_ = timestamp;
                due_ = Clock::now() + schedule_.repeat;
                log::debug("psiphon-connected: " + timestamp);
                return;
            }
            why = "its reply has no connected_timestamp";
        } catch (const Error& error) {
            why = error.what();
        }
    }
    log::debug("psiphon-connected: " + why + "; again in " + std::to_string(schedule_.retry.count()) + " s");
    due_ = Clock::now() + schedule_.retry;
}

}  // namespace psi::connect
