#include "psi/lifecycle.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <chrono>
#include <climits>
#include <cstdio>
#include <optional>
#include <thread>

#include "core/error.hpp"
#include "core/json.hpp"
#include "core/process.hpp"
#include "core/program_directory.hpp"
#include "psi/control.hpp"
#include "psi/status_report.hpp"
#include "psi/supervisor.hpp"

namespace psi::wrapper {
namespace {

namespace bp = boost::process;
using namespace std::chrono_literals;

std::string self_program() { return program_directory() + "/psi"; }

void require_root(const char* what) {
    if (::geteuid() != 0) throw Error(std::string("psi ") + what + " changes the firewall and the network: run it as root");
}

// Waits for a tunnel newer than `after` from the supervisor `pid`; false on timeout or when the
// supervisor ended.
bool wait_for_tunnel(const Config& config, std::int64_t pid, std::int64_t after, int seconds, bool& has_ended) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    has_ended = false;
    while (std::chrono::steady_clock::now() < deadline) {
        const json::Value state = read_state(config);
        if (state.get("pid", std::int64_t{0}) == pid) {
            const json::Value& tunnel = tunnel_of(state);
            if (tunnel.get("up", false) && tunnel.get("generation", std::int64_t{0}) > after) return true;
            if (state.find("running") && !state.get("running", false)) {
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

// A supervisor other than `pid` that runs, given a moment to write its pid file after it took
// the lock.
std::optional<Supervisor> other_supervisor(const Config& config, std::int64_t pid) {
    for (int attempt = 0; attempt < 10; ++attempt) {
        if (std::optional<Supervisor> other = find_supervisor(config); other && other->pid != pid) return other;
        std::this_thread::sleep_for(100ms);
    }
    return std::nullopt;
}

// The last supervisor's --allow-lan and mode; AllowLan is read from the file again. A state from
// before allowLanOption was recorded has only allowLan, which then stands for both.
UpRequest request_again(const json::Value& state, const std::string& config_path, int timeout) {
    UpRequest again;
    again.config_path = config_path;
    again.is_allow_lan = state.get(state.find("allowLanOption") ? "allowLanOption" : "allowLan", false);
    again.mode = state_text(state, "mode", "auto");
    again.timeout = timeout;
    return again;
}

}  // namespace

int up(const Config& config, const UpRequest& request) {
    require_root("up");
    const bool is_allow_lan = request.is_allow_lan;
    const int timeout = request.timeout;
    SupervisorOptions options{request.config_path, program_directory(), is_allow_lan, parse_tunnel_mode(request.mode)};
    if (request.is_foreground) return run_supervisor(config, options);
    if (const std::optional<Supervisor> running = find_supervisor(config)) {
        std::printf("psi is already up (pid %lld)\n", static_cast<long long>(running->pid));
        const json::Value state = read_state(config);
        if (tunnel_of(state).get("up", false)) print_tunnel(tunnel_of(state));
        return exit_status::ok;
    }
    prepare_run_directory(config);
    std::vector<std::string> arguments = {"--config", request.config_path, "up", "--foreground"};
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
        throw Error("psi could not start: " + state_text(state, "error", "see psi logs") +
                    "; whatever kill switch is loaded stays loaded");
    }
    throw Error("no tunnel within " + std::to_string(timeout) + " s (" + state_text(state, "error", "no server answered yet") +
                "); psi keeps trying, and with the kill switch up nothing leaves. psi status, psi logs");
}

int down(const Config& config, const std::string& config_path, bool is_open) {
    require_root("down");
    const std::optional<Supervisor> supervisor = find_supervisor(config);
    if (supervisor) {
        signal_supervisor(*supervisor, SIGTERM);
        if (!wait_for_exit(*supervisor, 20))
            throw Error("psi (pid " + std::to_string(supervisor->pid) + ") did not stop within 20 s");
    } else {
        run_checked({program_directory() + "/psi-tun", "--config", config_path, "down"});
    }
    if (!is_open) {
        std::puts("psi down: tunnel and TUN stopped; the kill switch stays up, so nothing leaves");
        return exit_status::ok;
    }
    std::fputs("psi: warning: removing the kill switch: from now on traffic leaves unprotected\n", stderr);
    run_checked({program_directory() + "/psi-fw", "--config", config_path, "down"});
    std::puts("psi down: tunnel, TUN and kill switch removed");
    return exit_status::ok;
}

int reload(const Config& config, int timeout) {
    require_root("reload");
    const std::optional<Supervisor> supervisor = find_supervisor(config);
    if (!supervisor) throw Error("psi is not up (psi up)");
    const std::int64_t before = tunnel_of(read_state(config)).get("generation", std::int64_t{0});
    signal_supervisor(*supervisor, SIGHUP);
    bool has_ended = false;
    if (!wait_for_tunnel(config, supervisor->pid, before, timeout, has_ended))
        throw Error("no new tunnel within " + std::to_string(timeout) +
                    " s; psi keeps trying, and with the kill switch up nothing leaves");
    print_tunnel(tunnel_of(read_state(config)));
    return exit_status::ok;
}

int restart(const Config& config, const std::string& config_path, int timeout) {
    require_root("restart");
    const json::Value state = read_state(config);
    if (const std::string unit = state_text(state, "systemdUnit"); !unit.empty() && find_supervisor(config))
        return restart_under_systemd(unit);
    down(config, config_path, false);
    return up(config, request_again(state, config_path, timeout));
}

}  // namespace psi::wrapper
