#include "psi/status_report.hpp"

#include <unistd.h>

#include <cstdio>
#include <optional>

#include "connect/notice.hpp"
#include "core/error.hpp"
#include "core/output.hpp"
#include "core/printable.hpp"
#include "core/process.hpp"
#include "psi/control.hpp"

namespace psi::wrapper {
namespace {

long long integer(const json::Value& object, const char* key) {
    return static_cast<long long>(object.get(key, std::int64_t{0}));
}

// psi-connect's packet tunnel counters (every 5 s while they change).
void print_packet_tunnel_stats(const json::Value& tunnel) {
    const json::Value* stats = tunnel.find("packetTunnelStats");
    if (!stats || !stats->is_object()) return;
    const connect::notice::PacketTunnelStats counters = connect::packet_tunnel_stats_from(*stats);
    std::printf("packet tunnel: %lld packets up, %lld down; dropped %lld up (filtered), %lld down (refused), "
                "%lld down (TUN full)\n",
                static_cast<long long>(counters.packets_up), static_cast<long long>(counters.packets_down),
                static_cast<long long>(counters.dropped_up), static_cast<long long>(counters.refused_down),
                static_cast<long long>(counters.unwritten_down));
}

// psi-tun's engine counters, when the engine answers; null otherwise.
json::Value engine_stats(const StatusRequest& request) {
    const ProcessResult stats =
        run_process({request.program_directory + "/psi-tun", "--config", request.config_path, "stats", "--json"});
    if (stats.exit_code != 0) return json::Value();
    try {
        return json::parse(stats.output, "psi-tun stats");
    } catch (const Error&) {
        return json::Value();  // an engine that answers nonsense shows as none
    }
}

}  // namespace

const json::Value& tunnel_of(const json::Value& state) {
    static const json::Value empty = json::Object{};
    const json::Value* tunnel = state.find("tunnel");
    return tunnel && tunnel->is_object() ? *tunnel : empty;
}

void print_tunnel(const json::Value& tunnel) {
    std::printf("tunnel up via %s%s, server region %s; SOCKS5 127.0.0.1:%lld, HTTP 127.0.0.1:%lld\n",
                state_text(tunnel, "protocol", "?").c_str(), tunnel.get("packetTunnel", false) ? " (packet tunnel)" : "",
                state_text(tunnel, "serverRegion", "?").c_str(), integer(tunnel, "socksPort"), integer(tunnel, "httpPort"));
    if (const json::Value* homepages = tunnel.find("homepages"); homepages && homepages->is_array())
        for (const json::Value& url : homepages->as_array())
            if (url.is_string() && is_homepage_url(url.as_string()))
                std::printf("homepage: %s\n", url.as_string().c_str());
}

int report_status(const Config& config, const StatusRequest& request) {
    if (::geteuid() != 0)
        throw Error("psi status reads the kill switch through nftables and root's files: run it as root");
    const std::optional<Supervisor> supervisor = find_supervisor(config);
    const json::Value state = supervisor ? read_state(config) : json::Value(json::Object{});
    const json::Value& tunnel = tunnel_of(state);
    const auto fw_status = [&](bool is_lan_allowed, bool is_json) {
        std::vector<std::string> argv = {request.program_directory + "/psi-fw", "--config", request.config_path,
                                         "status"};
        if (is_lan_allowed) argv.push_back("--allow-lan");
        if (is_json) argv.push_back("--json");
        return argv;
    };
    // The kill switch to expect is the running supervisor's. Without one, it is the one in
    // place: psi up --allow-lan and psi down leave the LAN allowed, which is no difference.
    bool is_lan_allowed = state.get("allowLan", false);
    ProcessResult fw = run_process(fw_status(is_lan_allowed, true));
    if (!supervisor && !is_lan_allowed && fw.exit_code == exit_status::not_secure) {
        ProcessResult with_lan = run_process(fw_status(true, true));
        if (with_lan.exit_code == exit_status::ok) {
            fw = std::move(with_lan);
            is_lan_allowed = true;
        }
    }
    const bool is_intact = fw.exit_code == exit_status::ok;
    const bool is_tunnel_up = supervisor && tunnel.get("up", false);
    const json::Value engine = supervisor ? engine_stats(request) : json::Value();
    if (request.is_json) {
        json::Value document = json::Object{};
        document.set("running", static_cast<bool>(supervisor));
        if (supervisor) document.set("pid", static_cast<std::int64_t>(supervisor->pid));
        document.set("tunnel", tunnel);
        document.set("killSwitch", json::Object{{"intact", is_intact}, {"allowLan", is_lan_allowed}});
        document.set("engine", engine);
        print_json(document);
    } else {
        if (supervisor) {
            std::printf("psi: up since %s (pid %d); psi-connect restarted %lld times, psi-tun run %lld\n",
                        state_text(state, "started", "?").c_str(), supervisor->pid, integer(state, "connectRestarts"),
                        integer(state, "engineRestarts"));
            if (is_tunnel_up) {
                print_tunnel(tunnel);
                std::printf("since %s\n", state_text(tunnel, "since", "?").c_str());
                print_packet_tunnel_stats(tunnel);
            } else {
                std::printf("tunnel: down, connecting%s\n",
                            state.find("error") ? (" (" + state_text(state, "error") + ")").c_str() : "");
            }
        } else {
            std::puts("psi: not running (psi up)");
        }
        // psi-fw's own words for the kill switch (tunnel or boot policy, LAN, differences).
        const ProcessResult fw_text = run_process(fw_status(is_lan_allowed, false));
        std::fputs(fw_text.output.c_str(), stdout);
        if (!is_intact)
            std::puts(supervisor ? "(psi puts it back within moments; psi-fw status names the difference)"
                                 : "(psi up or psi-fw up restores it)");
        if (const json::Value* flows = engine.is_object() ? engine.find("stats") : nullptr) {
            if (const json::Value* tcp = flows->find("tcp"))
                std::printf("packet engine: %lld TCP flows open\n", integer(*tcp, "flowsActive"));
        }
    }
    if (!is_intact) return exit_status::not_secure;
    return is_tunnel_up ? exit_status::ok : exit_status::failure;
}

}  // namespace psi::wrapper
