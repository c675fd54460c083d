// psi: the whole VPN in one command. up starts the supervisor (lib/psi/supervisor) in the
// background and waits for the tunnel; down, reload and restart signal it; status and logs read
// what it publishes. The kill switch is never lowered but by `psi down --open`.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <chrono>
#include <climits>
#include <cstdio>
#include <deque>
#include <fstream>
#include <string>
#include <thread>

#include "core/atomic_file.hpp"
#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "core/printable.hpp"
#include "core/process.hpp"
#include "psi/control.hpp"
#include "psi/supervisor.hpp"

namespace {

using namespace psi;
using namespace psi::wrapper;
namespace bp = boost::process;
using namespace std::chrono_literals;

std::string program_directory() {
    char self[PATH_MAX];
    const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) throw Error("cannot find psi's own program");
    std::string path(self, static_cast<std::size_t>(length));
    return path.substr(0, path.rfind('/'));
}

std::string self_program() { return program_directory() + "/psi"; }

void require_root(const char* what) {
    if (::geteuid() != 0) throw Error(std::string("psi ") + what + " changes the firewall and the network: run it as root");
}

void require_root_to_read() {
    if (::geteuid() != 0) throw Error("psi status reads the kill switch through nftables and root's files: run it as root");
}

std::string text(const json::Value& object, const char* key, const char* fallback = "") {
    const json::Value* value = object.find(key);
    return value && value->is_string() ? printable_text(value->as_string()) : fallback;
}

bool flag(const json::Value& object, const char* key) {
    const json::Value* value = object.find(key);
    return value && value->is_boolean() && value->as_boolean();
}

std::int64_t integer(const json::Value& object, const char* key) {
    const json::Value* value = object.find(key);
    return value && value->is_number() ? value->as_integer() : 0;
}

const json::Value& tunnel_of(const json::Value& state) {
    static const json::Value empty = json::Object{};
    const json::Value* tunnel = state.find("tunnel");
    return tunnel && tunnel->is_object() ? *tunnel : empty;
}

void print_tunnel(const json::Value& tunnel) {
    std::printf("tunnel up via %s%s, server region %s; SOCKS5 127.0.0.1:%lld, HTTP 127.0.0.1:%lld\n",
                text(tunnel, "protocol", "?").c_str(), flag(tunnel, "packetTunnel") ? " (packet tunnel)" : "",
                text(tunnel, "serverRegion", "?").c_str(),
                static_cast<long long>(integer(tunnel, "socksPort")),
                static_cast<long long>(integer(tunnel, "httpPort")));
    if (const json::Value* homepages = tunnel.find("homepages"); homepages && homepages->is_array())
        for (const json::Value& url : homepages->as_array())
            if (url.is_string() && is_homepage_url(url.as_string()))
                std::printf("homepage: %s\n", url.as_string().c_str());
}

// psi-connect's packet tunnel counters (every 5 s while they change).
void print_packet_tunnel_stats(const json::Value& tunnel) {
    const json::Value* stats = tunnel.find("packetTunnelStats");
    if (!stats || !stats->is_object()) return;
    const auto count = [&](const char* key) { return static_cast<long long>(integer(*stats, key)); };
    std::printf("packet tunnel: %lld packets up, %lld down; dropped %lld up (filtered), %lld down (refused), "
                "%lld down (TUN full)\n",
                count("packetsUp"), count("packetsDown"), count("droppedUp"), count("refusedDown"),
                count("unwrittenDown"));
}

// Waits for a tunnel newer than `after` from the supervisor `pid`; false on timeout or when the
// supervisor ended.
bool wait_for_tunnel(const Config& config, std::int64_t pid, std::int64_t after, int seconds, bool& has_ended) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    has_ended = false;
    while (std::chrono::steady_clock::now() < deadline) {
        const json::Value state = read_state(config);
        if (integer(state, "pid") == pid) {
            const json::Value& tunnel = tunnel_of(state);
            if (flag(tunnel, "up") && integer(tunnel, "generation") > after) return true;
            if (state.find("running") && !flag(state, "running")) {
                has_ended = true;
                return false;
            }
        }
        if (::kill(static_cast<pid_t>(pid), 0) != 0) {
            has_ended = true;
            return false;
        }
        int status = 0;
        if (::waitpid(static_cast<pid_t>(pid), &status, WNOHANG) == pid) {
            has_ended = true;
            return false;
        }
        std::this_thread::sleep_for(200ms);
    }
    return false;
}

// A supervisor that systemd started is restarted by systemd: a new one started here would run
// outside the service, and systemd would take the old one's end for a clean stop.
int restart_under_systemd(const std::string& unit) {
    std::printf("psi runs under systemd: systemctl restart %s\n", unit.c_str());
    std::fflush(stdout);
    run_checked({"systemctl", "restart", unit});
    return exit_status::ok;
}

struct UpRequest {
    bool is_foreground = false;
    bool is_allow_lan = false;
    std::string mode = "auto";
    int timeout = 60;
};

// A supervisor other than `pid` that runs, given a moment to write its pid file after it took
// the lock.
std::optional<Supervisor> other_supervisor(const Config& config, std::int64_t pid) {
    for (int attempt = 0; attempt < 10; ++attempt) {
        if (std::optional<Supervisor> other = find_supervisor(config); other && other->pid != pid) return other;
        std::this_thread::sleep_for(100ms);
    }
    return std::nullopt;
}

int up(const Config& config, const CommonOptions& common, const UpRequest& request) {
    require_root("up");
    const bool is_allow_lan = request.is_allow_lan;
    const int timeout = request.timeout;
    SupervisorOptions options{common.config_path, program_directory(), is_allow_lan, parse_tunnel_mode(request.mode)};
    if (request.is_foreground) return run_supervisor(config, options);
    if (const std::optional<Supervisor> running = find_supervisor(config)) {
        std::printf("psi is already up (pid %lld)\n", static_cast<long long>(running->pid));
        const json::Value state = read_state(config);
        if (flag(tunnel_of(state), "up")) print_tunnel(tunnel_of(state));
        return exit_status::ok;
    }
    prepare_run_directory(config);
    std::vector<std::string> arguments = {"--config", common.config_path, "up", "--foreground"};
    if (is_allow_lan) arguments.push_back("--allow-lan");
    arguments.insert(arguments.end(), {"--mode", request.mode});
    // Its own session, so that the terminal's ^C or hang-up never reaches it; it writes its log
    // (psi logs) itself.
    bp::child supervisor(self_program(), arguments, bp::std_in < bp::null, bp::std_out > bp::null,
                         bp::std_err > bp::null, bp::extend::on_exec_setup = [](auto&) { ::setsid(); });
    const auto pid = static_cast<std::int64_t>(supervisor.id());
    supervisor.detach();
    std::printf("psi: starting (pid %lld): kill switch, TUN, then the tunnel\n", static_cast<long long>(pid));
    const auto started = std::chrono::steady_clock::now();
    bool has_ended = false;
    if (wait_for_tunnel(config, pid, 0, timeout, has_ended)) {
        print_tunnel(tunnel_of(read_state(config)));
        return exit_status::ok;
    }
    // Another psi up started its supervisor at the same moment, and that one took the lock:
    // psi is up, and its tunnel is what this one waits for.
    if (const std::optional<Supervisor> other = has_ended ? other_supervisor(config, pid) : std::nullopt) {
        std::printf("psi is already up (pid %lld), started at the same time\n", static_cast<long long>(other->pid));
        const auto waited = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
        if (wait_for_tunnel(config, other->pid, 0, std::max(1, timeout - static_cast<int>(waited.count())), has_ended)) {
            print_tunnel(tunnel_of(read_state(config)));
            return exit_status::ok;
        }
    }
    const json::Value state = read_state(config);
    if (has_ended) {
        throw Error("psi could not start: " + text(state, "error", "see psi logs") +
                    "; whatever kill switch is loaded stays loaded");
    }
    throw Error("no tunnel within " + std::to_string(timeout) + " s (" + text(state, "error", "no server answered yet") +
                "); psi keeps trying, and with the kill switch up nothing leaves. psi status, psi logs");
}

int down(const Config& config, const CommonOptions& common, bool is_open) {
    require_root("down");
    const std::optional<Supervisor> supervisor = find_supervisor(config);
    if (supervisor) {
        signal_supervisor(*supervisor, SIGTERM);
        if (!wait_for_exit(*supervisor, 20))
            throw Error("psi (pid " + std::to_string(supervisor->pid) + ") did not stop within 20 s");
    } else {
        run_checked({program_directory() + "/psi-tun", "--config", common.config_path, "down"});
    }
    if (!is_open) {
        std::puts("psi down: tunnel and TUN stopped; the kill switch stays up, so nothing leaves");
        return exit_status::ok;
    }
    std::fputs("psi: warning: removing the kill switch: from now on traffic leaves unprotected\n", stderr);
    run_checked({program_directory() + "/psi-fw", "--config", common.config_path, "down"});
    std::puts("psi down: tunnel, TUN and kill switch removed");
    return exit_status::ok;
}

int reload(const Config& config, int timeout) {
    require_root("reload");
    const std::optional<Supervisor> supervisor = find_supervisor(config);
    if (!supervisor) throw Error("psi is not up (psi up)");
    const std::int64_t before = integer(tunnel_of(read_state(config)), "generation");
    signal_supervisor(*supervisor, SIGHUP);
    bool has_ended = false;
    if (!wait_for_tunnel(config, supervisor->pid, before, timeout, has_ended))
        throw Error("no new tunnel within " + std::to_string(timeout) +
                    " s; psi keeps trying, and with the kill switch up nothing leaves");
    print_tunnel(tunnel_of(read_state(config)));
    return exit_status::ok;
}

// The last supervisor's --allow-lan and mode; AllowLan is read from the file again. A state from
// before allowLanOption was recorded has only allowLan, which then stands for both.
UpRequest request_again(const json::Value& state, int timeout) {
    UpRequest again;
    again.is_allow_lan = flag(state, state.find("allowLanOption") ? "allowLanOption" : "allowLan");
    again.mode = text(state, "mode", "auto");
    again.timeout = timeout;
    return again;
}

int restart(const Config& config, const CommonOptions& common, int timeout) {
    require_root("restart");
    const json::Value state = read_state(config);
    if (const std::string unit = text(state, "systemdUnit"); !unit.empty() && find_supervisor(config))
        return restart_under_systemd(unit);
    down(config, common, false);
    return up(config, common, request_again(state, timeout));
}

int status(const Config& config, const CommonOptions& common) {
    require_root_to_read();
    const std::optional<Supervisor> supervisor = find_supervisor(config);
    const json::Value state = supervisor ? read_state(config) : json::Value(json::Object{});
    const json::Value& tunnel = tunnel_of(state);
    const std::string directory = program_directory();
    const auto fw_status = [&](bool is_lan_allowed, bool is_json) {
        std::vector<std::string> argv = {directory + "/psi-fw", "--config", common.config_path, "status"};
        if (is_lan_allowed) argv.push_back("--allow-lan");
        if (is_json) argv.push_back("--json");
        return argv;
    };
    // The kill switch to expect is the running supervisor's. Without one, it is the one in
    // place: psi up --allow-lan and psi down leave the LAN allowed, which is no difference.
    bool is_lan_allowed = flag(state, "allowLan");
    ProcessResult fw = run_process(fw_status(is_lan_allowed, true));
    if (!supervisor && !is_lan_allowed && fw.exit_code == exit_status::not_secure) {
        ProcessResult with_lan = run_process(fw_status(true, true));
        if (with_lan.exit_code == exit_status::ok) {
            fw = std::move(with_lan);
            is_lan_allowed = true;
        }
    }
    const bool is_intact = fw.exit_code == exit_status::ok;
    const bool is_tunnel_up = supervisor && flag(tunnel, "up");
    json::Value engine;
    if (supervisor) {
        const ProcessResult stats = run_process({directory + "/psi-tun", "--config", common.config_path, "stats", "--json"});
        try {
            if (stats.exit_code == 0) engine = json::parse(stats.output, "psi-tun stats");
        } catch (const Error&) {
        }
    }
    if (common.is_json) {
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
                        text(state, "started", "?").c_str(), supervisor->pid,
                        static_cast<long long>(integer(state, "connectRestarts")),
                        static_cast<long long>(integer(state, "engineRestarts")));
            if (is_tunnel_up) {
                print_tunnel(tunnel);
                std::printf("since %s\n", text(tunnel, "since", "?").c_str());
                print_packet_tunnel_stats(tunnel);
            } else {
                std::printf("tunnel: down, connecting%s\n",
                            state.find("error") ? (" (" + text(state, "error") + ")").c_str() : "");
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
            const json::Value* tcp = flows->find("tcp");
            if (tcp)
                std::printf("packet engine: %lld TCP flows open\n", static_cast<long long>(integer(*tcp, "flowsActive")));
        }
    }
    if (!is_intact) return exit_status::not_secure;
    return is_tunnel_up ? exit_status::ok : exit_status::failure;
}

int logs(const Config& config, int lines, bool is_follow) {
    const std::string path = run_files(config).log;
    std::ifstream file(path);
    if (!file) throw Error("no log yet (" + path + ")");
    std::deque<std::string> last;
    std::string line;
    while (std::getline(file, line)) {
        last.push_back(line);
        if (static_cast<int>(last.size()) > lines) last.pop_front();
    }
    for (const std::string& kept : last) std::puts(kept.c_str());
    std::fflush(stdout);
    while (is_follow) {
        file.clear();
        while (std::getline(file, line)) std::puts(line.c_str());
        std::fflush(stdout);
        std::this_thread::sleep_for(250ms);
    }
    return exit_status::ok;
}

}  // namespace

int main(int argc, char** argv) {
    CommonOptions common;
    UpRequest up_request;
    bool is_open = false;
    bool is_follow = false;
    int timeout = 60;
    int lines = 50;
    CLI::App app{"psi: a Psiphon VPN for the whole machine, closed when the tunnel is down.\n"
                 "up brings up the kill switch, the TUN and the tunnel; down takes the tunnel down and keeps\n"
                 "the kill switch.",
                 "psi"};
    add_common_options(app, common);
    app.require_subcommand(1);
    auto* up_command = app.add_subcommand("up", "Kill switch, TUN, tunnel; waits for the tunnel (psi keeps it up)");
    up_command->add_flag("--foreground", up_request.is_foreground, "Run the supervisor in the foreground (systemd)");
    up_command->add_flag("--allow-lan", up_request.is_allow_lan, "Let the LAN through the kill switch (never DNS)");
    up_command->add_option("--mode", up_request.mode,
                           "packet: Psiphon's packet tunnel; socks: psi-tun run into the SOCKS proxy; auto: packet where offered")
        ->check(CLI::IsMember({"auto", "packet", "socks"}))
        ->capture_default_str();
    up_command->add_option("--timeout", timeout, "Seconds to wait for the tunnel")->capture_default_str();
    auto* down_command = app.add_subcommand("down", "Stop the tunnel and the TUN; the kill switch stays up");
    down_command->add_flag("--open", is_open, "Also remove the kill switch (traffic leaves unprotected)");
    auto* reload_command = app.add_subcommand("reload", "Restart psi-connect only; the kill switch and the TUN stay");
    reload_command->add_option("--timeout", timeout, "Seconds to wait for the new tunnel")->capture_default_str();
    auto* restart_command = app.add_subcommand("restart", "down, then up (the kill switch stays up throughout)");
    restart_command->add_option("--timeout", timeout, "Seconds to wait for the tunnel")->capture_default_str();
    auto* status_command = app.add_subcommand("status", "One screen: the tunnel, the kill switch, the engine (root)");
    auto* logs_command = app.add_subcommand("logs", "psi's log: the supervisor, psi-connect and psi-tun run");
    logs_command->add_option("-n,--lines", lines, "How many of the last lines")->capture_default_str();
    logs_command->add_flag("-f,--follow", is_follow, "Keep printing new lines");
    app.footer("Examples:\n  sudo psi up\n  psi status\n  sudo psi reload\n  sudo psi down\n"
               "Exit status: 0 ok, 1 failure (status: no tunnel), 2 usage, 3 the kill switch is not intact.\n"
               "See psi(8).");

    return run_program(app, argc, argv, common, [&]() -> int {
        const Config config = load_config_from(common);
        if (*up_command) {
            up_request.timeout = timeout;
            return up(config, common, up_request);
        }
        if (*down_command) return down(config, common, is_open);
        if (*reload_command) return reload(config, timeout);
        if (*restart_command) return restart(config, common, timeout);
        if (*status_command) return status(config, common);
        if (*logs_command) return logs(config, lines, is_follow);
        return exit_status::usage;
    });
}
