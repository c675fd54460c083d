#include "psi/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <variant>

#include "connect/notice.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/event_loop.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/loopback_listener.hpp"
#include "core/printable.hpp"
#include "core/privileges.hpp"
#include "core/process.hpp"
#include "core/signals.hpp"
#include "core/unique_fd.hpp"
#include "psi/control.hpp"
#include "servers/server_outcome.hpp"
#include "tun/tun_network.hpp"

namespace bp = boost::process;

namespace psi::wrapper {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto first_backoff = std::chrono::seconds(1);
constexpr auto longest_backoff = std::chrono::seconds(30);
constexpr auto stable_after = std::chrono::seconds(60);  // a child that ran this long restarts at once
constexpr int stop_grace_seconds = 5;
constexpr off_t max_log_bytes = 1 << 20;
constexpr off_t max_discovered_bytes = 1 << 20;

std::string utc_now() {
    char text[32];
    const std::time_t now = std::time(nullptr);
    std::tm parts{};
    ::gmtime_r(&now, &parts);
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return text;
}

// A program the supervisor starts: the signals the supervisor blocks (it reads them through
// signalfd) and ignores (SIGPIPE) back to their defaults, of its descriptors only `inherited`,
// and SIGTERM when the supervisor ends, however it ends: an orphan would hold the proxies'
// ports and the TUN, and carry traffic that nothing supervises.
auto as_supervised_child(std::vector<int> inherited) {
    const pid_t supervisor = ::getpid();
    return bp::extend::on_exec_setup = [inherited = std::move(inherited), supervisor](auto&) {
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        for (int fd : inherited) ::fcntl(fd, F_SETFD, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != supervisor) ::_exit(127);  // it ended before the line above
    };
}

// One supervised program: started by Boost.Process, watched through a process descriptor.
class Child {
public:
    using Exited = std::function<void(int status)>;

    Child(EventLoop& loop, std::string name) : loop_(loop), name_(std::move(name)) {}
    ~Child() { stop(); }

    const std::string& name() const { return name_; }
    bool is_running() const { return pid_ > 0; }
    pid_t pid() const { return pid_; }
    int restarts() const { return restarts_; }

    // Starts argv with stdin from `input` (written whole, then closed), stdout to `on_line`
    // (a line at a time) or to `log`, stderr to `log`; the descriptors in `inherited` stay open in it.
    void start(const std::vector<std::string>& argv, const std::string& input, std::FILE* log,
               std::function<void(const std::string&)> on_line, Exited exited, std::vector<int> inherited = {}) {
        bp::pipe in;
        bp::pipe out;
        const std::vector<std::string> arguments(argv.begin() + 1, argv.end());
        bp::child child = on_line ? bp::child(argv.front(), arguments, bp::std_in < in, bp::std_out > out,
                                              bp::std_err > log, as_supervised_child(std::move(inherited)))
                                  : bp::child(argv.front(), arguments, bp::std_in < in, bp::std_out > log,
                                              bp::std_err > log, as_supervised_child(std::move(inherited)));
        pid_ = static_cast<pid_t>(child.id());
        child.detach();  // reaped here, through the process descriptor
        started_ = Clock::now();
        // The child has its ends; ours are the write end of stdin and the read end of stdout.
        take(in, &bp::pipe::native_source, &bp::pipe::assign_source).reset();
        try {
            UniqueFd input_end = take(in, &bp::pipe::native_sink, &bp::pipe::assign_sink);
            write_all(input_end.get(), input, name_ + "'s input");
            input_end.reset();
            process_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
            if (!process_.is_open()) throw_system_error("cannot watch " + name_, errno);
        } catch (...) {
            // A child that died before it read its input (EPIPE), or cannot be watched: ended
            // and forgotten, so that it is started again instead of counted as running.
            ::kill(pid_, SIGKILL);
            while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
            }
            forget();
            throw;
        }
        exited_ = std::move(exited);
        loop_.add(process_.get(), EPOLLIN, [this](std::uint32_t) { reap(); });
        if (on_line) {
            take(out, &bp::pipe::native_sink, &bp::pipe::assign_sink).reset();
            output_ = take(out, &bp::pipe::native_source, &bp::pipe::assign_source);
            ::fcntl(output_.get(), F_SETFL, ::fcntl(output_.get(), F_GETFL) | O_NONBLOCK);
            on_line_ = std::move(on_line);
            loop_.add(output_.get(), EPOLLIN, [this](std::uint32_t) { read_output(); });
        }
    }

    // SIGTERM, then SIGKILL after the grace period; returns once it has ended.
    void stop() {
        if (pid_ <= 0) return;
        ::syscall(SYS_pidfd_send_signal, process_.get(), SIGTERM, nullptr, 0);
        pollfd ended{process_.get(), POLLIN, 0};
        if (::poll(&ended, 1, stop_grace_seconds * 1000) <= 0)
            ::syscall(SYS_pidfd_send_signal, process_.get(), SIGKILL, nullptr, 0);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        forget();
    }

    // Asks it to end; reap() follows when it has.
    void terminate() {
        if (pid_ > 0) ::syscall(SYS_pidfd_send_signal, process_.get(), SIGTERM, nullptr, 0);
    }

    // How long to wait before starting it again after it ended (or could not start).
    std::chrono::seconds next_backoff() {
        if (has_run_long_) backoff_ = first_backoff;
        has_run_long_ = false;
        const auto wait = backoff_;
        backoff_ = std::min(backoff_ * 2, longest_backoff);
        ++restarts_;
        return wait;
    }

private:
    // One end of a Boost.Process pipe, owned from now on (the pipe forgets it).
    static UniqueFd take(bp::pipe& pipe, int (bp::pipe::*get)() const, void (bp::pipe::*forget)(int)) {
        UniqueFd end((pipe.*get)());
        (pipe.*forget)(-1);
        return end;
    }

    void read_output() {
        char buffer[8192];
        for (;;) {
            const ssize_t n = ::read(output_.get(), buffer, sizeof buffer);
            if (n > 0) {
                pending_.append(buffer, static_cast<std::size_t>(n));
                std::size_t end;
                while ((end = pending_.find('\n')) != std::string::npos) {
                    const std::string line = pending_.substr(0, end);
                    pending_.erase(0, end + 1);
                    on_line_(line);
                }
                if (pending_.size() > 65536) pending_.clear();  // no notice is that long
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                loop_.remove(output_.get());
                output_.reset();
            }
            return;
        }
    }

    void reap() {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) <= 0) return;
        has_run_long_ = Clock::now() - started_ >= stable_after;
        if (output_.is_open()) read_output();
        forget();
        if (exited_) exited_(status);
    }

    void forget() {
        if (process_.is_open() && loop_.contains(process_.get())) loop_.remove(process_.get());
        if (output_.is_open() && loop_.contains(output_.get())) loop_.remove(output_.get());
        process_.reset();
        output_.reset();
        pending_.clear();
        pid_ = 0;
    }

    EventLoop& loop_;
    std::string name_;
    pid_t pid_ = 0;
    UniqueFd process_;
    UniqueFd output_;
    std::string pending_;
    std::function<void(const std::string&)> on_line_;
    Exited exited_;
    Clock::time_point started_{};
    std::chrono::seconds backoff_ = first_backoff;
    bool has_run_long_ = false;
    int restarts_ = 0;
};

}  // namespace

TunnelMode parse_tunnel_mode(const std::string& text) {
    if (text == "auto") return TunnelMode::automatic;
    if (text == "packet") return TunnelMode::packet;
    if (text == "socks") return TunnelMode::socks;
    throw Error("--mode " + text + ": auto, packet or socks", exit_status::usage);
}

const char* tunnel_mode_name(TunnelMode mode) {
    switch (mode) {
        case TunnelMode::packet: return "packet";
        case TunnelMode::socks: return "socks";
        case TunnelMode::automatic: break;
    }
    return "auto";
}

namespace {

std::string describe_exit(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
    return "ended";
}

class SupervisorLoop {
public:
    SupervisorLoop(const Config& config, const SupervisorOptions& options, std::FILE* log)
        : config_(config),
          options_(options),
          log_(log),
          connect_(loop_, "psi-connect"),
          engine_(loop_, "psi-tun run"),
          watch_(loop_, "psi-fw watch"),
          refresh_(loop_, "psi-servers refresh") {}

    int run() {
        say("starting (pid " + std::to_string(::getpid()) + ")");
        state_.set("pid", static_cast<std::int64_t>(::getpid()));
        state_.set("started", utc_now());
        state_.set("allowLan", options_.is_allow_lan || config_.allow_lan);
        state_.set("allowLanOption", options_.is_allow_lan);
        state_.set("mode", tunnel_mode_name(options_.mode));
        if (const std::string unit = systemd_unit(); !unit.empty()) state_.set("systemdUnit", unit);
        set_tunnel_down();
        try {
            run_checked(with_lan("psi-fw", "up"));
            say("kill switch up");
            run_checked(with_lan("psi-tun", "up"));
            say("TUN up");
            hold_proxy_ports();
        } catch (const Error& error) {
            // Whatever psi-fw left in place stays; a failed up never lowers the kill switch.
            say(std::string("cannot start: ") + error.what());
            state_.set("error", std::string(error.what()));
            state_.set("running", false);
            publish();
            return exit_status::failure;
        }
        UniqueFd signals = receive_signals({SIGTERM, SIGINT, SIGHUP});
        loop_.add(signals.get(), EPOLLIN, [this, fd = signals.get()](std::uint32_t) { on_signal(fd); });
        loop_.every(std::chrono::milliseconds(500), [this] { tick(); });
        start_or_retry(watch_, watch_retry_, [this] { start_watch(); });
        start_or_retry(connect_, connect_retry_, [this] { start_connect(); });
        // With the packet tunnel, psi-connect carries the TUN itself; psi-tun run only if it is refused.
        if (options_.mode == TunnelMode::socks) start_or_retry(engine_, engine_retry_, [this] { start_engine(); });
        loop_.run();
        say("stopping");
        refresh_.stop();
        connect_.stop();
        engine_.stop();
        watch_.stop();
        try {
            run_checked(tool("psi-tun", {"down"}));
        } catch (const Error& error) {
            say(std::string("psi-tun down: ") + error.what());
        }
        set_tunnel_down();
        state_.set("running", false);
        publish();
        say("stopped; the kill switch stays up (psi down --open removes it)");
        return exit_status::ok;
    }

private:
    void on_signal(int fd) {
        signalfd_siginfo info{};
        while (::read(fd, &info, sizeof info) == sizeof info) {
            if (info.ssi_signo == SIGHUP) {
                say("reload: restarting psi-connect");
                if (connect_.is_running()) {
                    is_reloading_ = true;
                    connect_.terminate();
                } else {
                    connect_retry_ = Clock::now();
                }
            } else {
                loop_.stop();
            }
        }
    }

    void start_connect() {
        if (is_fetching_first_list_) return;  // its end starts psi-connect
        std::string entries;
        std::string why_none = "psi-servers pick printed no server";
        try {
            const ProcessResult pick = run_process(tool("psi-servers", {"pick"}));
            if (pick.exit_code == 0) entries = pick.output;
            std::string reason = pick.errors.substr(0, pick.errors.find('\n'));
            const std::string prefix = "psi-servers: error: ";
            if (reason.rfind(prefix, 0) == 0) reason.erase(0, prefix.size());
            if (!reason.empty()) why_none = reason;
        } catch (const Error& error) {
            why_none = std::string("psi-servers pick: ") + error.what();
        }
        if (entries.empty() && !has_imported_embedded_list_) {
            has_imported_embedded_list_ = true;
            if (import_embedded_list()) {
                start_connect();
                return;
            }
        }
        if (entries.empty()) {
            fetch_first_list(why_none);
            return;
        }
        std::vector<std::string> argv = tool("psi-connect", {"--entries", "-", "--discovered", discovered_path()});
        std::vector<int> listeners;
        for (const auto& [option, held] : {std::pair{"--socks-fd", &socks_listeners_}, {"--http-fd", &http_listeners_}})
            for (const UniqueFd& socket : held->sockets) {
                argv.insert(argv.end(), {option, std::to_string(socket.get())});
                listeners.push_back(socket.get());
            }
        is_connect_discarded_ = false;
        if (wants_packet_tunnel()) {
            if (connect_.restarts() > 0) make_tun_again();
            argv.insert(argv.end(), {"--tun", config_.tun_name});
        }
        connect_.start(argv, entries, log_,
                       [this](const std::string& line) { on_notice(line); },
                       [this](int status) { on_connect_exit(status); }, listeners);
        state_.set("connectPid", static_cast<std::int64_t>(connect_.pid()));
        publish();
    }

    // The proxies' ports, on 127.0.0.1 and [::1], are bound here and held until psi stops: each
    // psi-connect serves them from these sockets, so that no other local user can take a port
    // while psi-connect restarts and receive what the packet engine and applications send there.
    void hold_proxy_ports() {
        socks_listeners_ = listen_on_loopback(static_cast<std::uint16_t>(local_socks_port(config_)));
        http_listeners_ = listen_on_loopback(static_cast<std::uint16_t>(local_http_port(config_)));
    }

    // An empty store (a first run): the remote list, fetched as the tunnel user, the only one
    // the kill switch lets out while there is no tunnel, and tried again with backoff until a
    // server can be picked. The system's resolver already points into the TUN, where nothing
    // answers yet: the list's host is resolved at the uplink's own resolvers, which psi-tun up
    // recorded, for this fetch alone. It runs beside the loop, so that signals are acted on
    // while it takes its time.
    void fetch_first_list(const std::string& why_none) {
        std::vector<std::string> arguments;
        try {
            for (const std::string& resolver : tun::recorded_uplink_resolvers(config_))
                arguments.insert(arguments.end(), {"--resolver", resolver});
        } catch (const Error& error) {
            say(std::string("the uplink's resolvers are unknown: ") + error.what());
        }
        if (arguments.empty()) say("no resolver of the uplink was recorded: the list's host goes to the system's resolver");
        is_fetching_first_list_ = true;
        state_.set("error", why_none);
        publish();
        say(why_none + ": fetching the remote list");
        start_refresh(arguments, [this](bool is_fetched) {
            is_fetching_first_list_ = false;
            if (is_fetched) {
                connect_retry_ = Clock::now();
                return;
            }
            const auto wait = refresh_.next_backoff();
            say("no server list yet; fetching it again in " + std::to_string(wait.count()) + " s");
            connect_retry_ = Clock::now() + wait;
        });
    }

    // PROGRAM, beside psi, with psi's config and ARGUMENTS.
    std::vector<std::string> tool(const char* program, std::initializer_list<std::string> arguments) const {
        std::vector<std::string> argv = {options_.program_directory + "/" + program, "--config", options_.config_path};
        argv.insert(argv.end(), arguments);
        return argv;
    }

    // psi-fw or psi-tun COMMAND, with --allow-lan when psi up had it.
    std::vector<std::string> with_lan(const char* program, const char* command) const {
        std::vector<std::string> argv = tool(program, {command});
        if (options_.is_allow_lan) argv.push_back("--allow-lan");
        return argv;
    }

    // The engine and psi-connect --tun also end when the TUN went away: psi-tun up
    // (idempotent) makes it anew before either starts again.
    void make_tun_again() {
        const ProcessResult result = run_process(with_lan("psi-tun", "up"));
        if (result.exit_code != 0) say("psi-tun up: " + result.errors);
    }

    void start_engine() {
        if (engine_.restarts() > 0) make_tun_again();
        engine_.start(tool("psi-tun", {"run"}), std::string(),
                      log_, nullptr, [this](int status) { on_engine_exit(status); });
        state_.set("enginePid", static_cast<std::int64_t>(engine_.pid()));
        publish();
    }

    // psi-fw watch puts the kill switch back when anything else removes or changes it.
    void start_watch() {
        watch_.start(with_lan("psi-fw", "watch"), std::string(), log_, nullptr, [this](int status) {
            say("psi-fw watch " + describe_exit(status) + "; starting it again");
            watch_retry_ = Clock::now() + watch_.next_backoff();
        });
    }

    void on_connect_exit(int status) {
        record_outcomes();
        set_tunnel_down();
        if (is_reloading_) {
            is_reloading_ = false;
            connect_retry_ = Clock::now();
        } else {
            say("psi-connect " + describe_exit(status) + "; starting it again");
            connect_retry_ = Clock::now() + connect_.next_backoff();
        }
        state_.set("connectRestarts", static_cast<std::int64_t>(connect_.restarts()));
        publish();
    }

    void on_engine_exit(int status) {
        say("psi-tun run " + describe_exit(status) + "; starting it again");
        engine_retry_ = Clock::now() + engine_.next_backoff();
        state_.set("engineRestarts", static_cast<std::int64_t>(engine_.restarts()));
        publish();
    }

    void tick() {
        const auto now = Clock::now();
        if (!connect_.is_running() && connect_retry_ && now >= *connect_retry_) {
            connect_retry_.reset();
            start_or_retry(connect_, connect_retry_, [this] { start_connect(); });
        }
        if (!engine_.is_running() && engine_retry_ && now >= *engine_retry_) {
            engine_retry_.reset();
            start_or_retry(engine_, engine_retry_, [this] { start_engine(); });
        }
        if (!watch_.is_running() && watch_retry_ && now >= *watch_retry_) {
            watch_retry_.reset();
            start_or_retry(watch_, watch_retry_, [this] { start_watch(); });
        }
    }

    // A child that cannot even start (its program missing, say) is tried again later; the
    // supervisor, and the kill switch with it, stays.
    void start_or_retry(Child& child, std::optional<Clock::time_point>& retry, const std::function<void()>& start) {
        try {
            start();
        } catch (const std::exception& error) {
            say("cannot start " + child.name() + ": " + error.what());
            retry = Clock::now() + child.next_backoff();
        }
    }

    // psi-connect's notices (Psiphon's format): the tunnel's state for psi status.
    // psi-connect runs as the tunnel user: a line that is not a notice as it writes them (not
    // JSON, a port that is not a whole number) is ignored, never the supervisor's end.
    void on_notice(const std::string& line) {
        const std::optional<connect::Notice> notice = connect::parse_notice(line);
        if (!notice) return;
        if (const auto* outcome = std::get_if<connect::notice::ServerOutcome>(&*notice)) {
            remember(*outcome);
            return;
        }
        record_outcomes();  // with the next other notice: after each round, and with each tunnel
        if (is_connect_discarded_) return;
        std::visit([this](const auto& alternative) { handle(alternative); }, *notice);
        // Homepages are published with the tunnel's next notice, not one state file each.
        if (!std::holds_alternative<connect::notice::Homepage>(*notice)) {
            state_.set("tunnel", tunnel_);
            publish();
        }
    }

    void handle(const connect::notice::Tunnels& notice) {
        if (notice.count > 0) {
            tunnel_.set("up", true);
            tunnel_.set("since", utc_now());
            tunnel_.set("generation", ++generation_);  // psi reload waits for the next one
            state_.erase("error");
            say("tunnel up (" + tunnel_.get("protocol", "?") + ", server region " + tunnel_.get("serverRegion", "?") +
                ")");
            import_discovered();
            refresh_servers_once();
        } else {
            set_tunnel_down();
            say("tunnel down; psi-connect is reconnecting");
        }
    }

    void handle(const connect::notice::PacketTunnelStats& notice) {
        tunnel_.set("packetTunnelStats", connect::to_json(notice));
    }

    void handle(const connect::notice::PacketTunnel& notice) { on_packet_tunnel(notice.state); }

    void handle(const connect::notice::ActiveTunnel& notice) {
        tunnel_.set("protocol", printable_text(notice.protocol));
        tunnel_.set("homepages", json::Array{});
    }

    void handle(const connect::notice::ConnectedServerRegion& notice) {
        tunnel_.set("serverRegion", printable_text(notice.server_region));
    }

    void handle(const connect::notice::ClientRegion& notice) {
        tunnel_.set("clientRegion", printable_text(notice.region));
    }

    // Shown by psi up and psi status on root's terminal: a few clean URLs.
    void handle(const connect::notice::Homepage& notice) {
        if (!tunnel_.find("homepages")) tunnel_.set("homepages", json::Array{});
        json::Array& homepages = tunnel_.find("homepages")->as_array();
        const json::Value url = notice.url;
        if (is_homepage_url(notice.url) && homepages.size() < max_homepages &&
            std::find(homepages.begin(), homepages.end(), url) == homepages.end())
            homepages.push_back(url);
    }

    void handle(const connect::notice::ListeningSocksProxyPort& notice) { tunnel_.set("socksPort", notice.port); }

    void handle(const connect::notice::ListeningHttpProxyPort& notice) { tunnel_.set("httpPort", notice.port); }

    void handle(const connect::notice::Warning& notice) { say("psi-connect: " + printable_text(notice.message)); }
    void handle(const connect::notice::Error& notice) { say("psi-connect: " + printable_text(notice.message)); }
    void handle(const connect::notice::Exiting&) {}
    void handle(const connect::notice::ServerOutcome&) {}  // remembered before, in on_notice

    // The server memory: what became of each candidate, written to the store by psi-servers
    // record in batches, which checks every field again. The time is root's clock, not the
    // tunnel user's word.
    void remember(const connect::notice::ServerOutcome& notice) {
        servers::ServerOutcome outcome{notice.address, notice.protocol, notice.is_connected,
                                       servers::FailureClass::none, static_cast<std::int64_t>(std::time(nullptr))};
        if (!notice.is_connected) {
            const std::optional<servers::FailureClass> failure = servers::parse_failure_class(notice.failure);
            if (!failure) return;
            outcome.failure = *failure;
        }
        const std::string line = servers::to_json(outcome).dump() + "\n";
        if (pending_outcomes_.size() + line.size() <= servers::max_outcome_input_bytes) pending_outcomes_ += line;
    }

    void record_outcomes() {
        if (pending_outcomes_.empty()) return;
        try {
            const UniqueFd input = memory_file("psi-server-outcomes", pending_outcomes_);
            pending_outcomes_.clear();
            const ProcessResult result = run_process(tool("psi-servers", {"record", "-"}), input.get());
            if (result.exit_code != 0)
                say("psi-servers record: " + printable_text(result.errors.substr(0, result.errors.find('\n'))));
        } catch (const Error& error) {
            say(std::string("cannot record the servers' outcomes: ") + error.what());
        }
    }

    // An empty store (a first run): the list shipped with psi, when there is one. Local and
    // quick, so it runs in the loop.
    bool import_embedded_list() {
        const std::string& list = config_.embedded_server_list;
        if (list.empty() || ::access(list.c_str(), R_OK) != 0) return false;
        say("no server to pick: importing the shipped server list " + list);
        const ProcessResult result = run_process(tool("psi-servers", {"import", list}));
        if (result.exit_code != 0) say("psi-servers import: " + result.errors.substr(0, result.errors.find('\n')));
        return result.exit_code == 0;
    }

    bool wants_packet_tunnel() const { return options_.mode != TunnelMode::socks && !is_packet_tunnel_refused_; }

    // The server took the packet tunnel, or refused it: then psi-tun run carries the TUN into
    // psi-connect's SOCKS proxy (auto), or psi-connect is tried again later (packet).
    void on_packet_tunnel(connect::notice::PacketTunnel::State state) {
        tunnel_.set("packetTunnel", state == connect::notice::PacketTunnel::State::up);
        if (state != connect::notice::PacketTunnel::State::refused) return;
        if (options_.mode == TunnelMode::packet) {
            say("the server refused the packet tunnel, and --mode packet allows nothing else; trying again");
            state_.set("error", std::string("the server refused the packet tunnel (--mode packet)"));
            is_connect_discarded_ = true;  // its Tunnels count 1 (proxies only) is no tunnel here
            connect_.terminate();
            return;
        }
        is_packet_tunnel_refused_ = true;
        say("the server has no packet tunnel: psi-tun run carries the TUN into the SOCKS proxy");
        if (!engine_.is_running()) start_or_retry(engine_, engine_retry_, [this] { start_engine(); });
    }

    // Where psi-connect, as the tunnel user, writes the servers the handshake hands out.
    std::string discovered_path() const { return config_.data_root_directory + "/discovered"; }

    // Those servers go into the store (source DISCOVERY), so that psi can reach them when the
    // lists cannot be fetched. psi-servers reads them through a descriptor opened here without
    // following links, and only a regular file of the tunnel user's: root reads no path the
    // tunnel user could point elsewhere.
    void import_discovered() {
        const std::string path = discovered_path();
        UniqueFd file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
        if (!file.is_open()) return;  // none handed out
        ::unlink(path.c_str());       // taken: the next tunnel's servers come in a new file
        struct stat info {};
        if (::fstat(file.get(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_uid != tunnel_uid() ||
            info.st_size > max_discovered_bytes) {
            say("ignored " + path + ": not a regular file of " + config_.tunnel_user + " of at most 1 MiB");
            return;
        }
        const ProcessResult result =
            run_process(tool("psi-servers", {"import", "--source", "DISCOVERY", "-"}), file.get());
        std::istringstream lines(result.exit_code == 0 ? result.output : result.errors);
        for (std::string line; std::getline(lines, line);)
            if (!line.empty()) say("servers the tunnel handed out: " + line);
    }

    uid_t tunnel_uid() const {
        try {
            return lookup_user(config_.tunnel_user).uid;
        } catch (const Error&) {
            return static_cast<uid_t>(-1);  // no such user: no file is theirs
        }
    }

    // Once per run, with the first tunnel: the remote server list, fetched through it.
    void refresh_servers_once() {
        if (has_refreshed_through_tunnel_) return;
        has_refreshed_through_tunnel_ = true;
        const json::Value* port = tunnel_.find("socksPort");
        if (!port) return;
        start_refresh({"--proxy", "socks5h://127.0.0.1:" + std::to_string(port->as_integer())}, [](bool) {});
    }

    // psi-servers refresh beside the loop; `after` runs when it has ended, however it ended,
    // told whether it stored a list (exit 0) or had nothing to change (refresh's exit 4).
    void start_refresh(const std::vector<std::string>& extra, std::function<void(bool)> after) {
        constexpr int refresh_unchanged = 4;
        if (refresh_.is_running()) refresh_.stop();
        std::vector<std::string> argv = tool("psi-servers", {"refresh"});
        argv.insert(argv.end(), extra.begin(), extra.end());
        try {
            refresh_.start(argv, std::string(), log_, nullptr, [this, after](int status) {
                const bool is_done = WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == refresh_unchanged);
                if (!is_done) say("psi-servers refresh " + describe_exit(status));
                after(is_done && WEXITSTATUS(status) == 0);
            });
        } catch (const std::exception& error) {
            say(std::string("cannot refresh the server list: ") + error.what());
            after(false);
        }
    }

    void set_tunnel_down() {
        tunnel_.set("up", false);
        state_.set("tunnel", tunnel_);
        state_.set("running", true);
    }

    // To the log file, and to stderr (the journal under systemd; /dev/null when psi up started it).
    void say(const std::string& message) {
        std::fprintf(log_, "%s psi: %s\n", utc_now().c_str(), message.c_str());
        std::fflush(log_);
        std::fprintf(stderr, "psi: %s\n", message.c_str());
    }

    void publish() {
        try {
            replace_file(run_files(config_).state, state_.dump() + "\n", 0644);
        } catch (const Error& error) {
            std::fprintf(log_, "%s psi: cannot write the state: %s\n", utc_now().c_str(), error.what());
        }
    }

    const Config& config_;
    const SupervisorOptions& options_;
    std::FILE* log_;
    EventLoop loop_;
    Child connect_;
    Child engine_;
    Child watch_;
    Child refresh_;
    LoopbackListeners socks_listeners_;
    LoopbackListeners http_listeners_;
    json::Value state_ = json::Object{};
    json::Value tunnel_ = json::Object{};
    std::int64_t generation_ = 0;
    std::optional<Clock::time_point> connect_retry_;
    std::optional<Clock::time_point> engine_retry_;
    std::optional<Clock::time_point> watch_retry_;
    bool is_reloading_ = false;
    bool has_refreshed_through_tunnel_ = false;
    bool is_fetching_first_list_ = false;
    bool has_imported_embedded_list_ = false;
    bool is_packet_tunnel_refused_ = false;  // for the rest of this run
    std::string pending_outcomes_;  // ServerOutcome lines for psi-servers record
    bool is_connect_discarded_ = false;      // psi-connect is being ended: its notices do not count
};

}  // namespace

int run_supervisor(const Config& config, const SupervisorOptions& options) {
    prepare_run_directory(config);
    const RunFiles files = run_files(config);
    FileLock lock(files.lock, FileLock::Wait::fail_if_held);
    if (!lock.is_held()) throw Error("psi is already up (psi status)", already_up_exit_status);
    replace_file(files.pid, std::to_string(::getpid()) + "\n", 0644);
    struct stat log_info {};
    if (::stat(files.log.c_str(), &log_info) == 0 && log_info.st_size > max_log_bytes)
        ::rename(files.log.c_str(), (files.log + ".1").c_str());  // one old log is kept
    UniqueFd log_fd = open_private_file(files.log, O_WRONLY | O_APPEND);
    std::FILE* log = ::fdopen(log_fd.release(), "a");
    if (!log) throw_system_error("cannot open " + files.log, errno);
    SupervisorLoop supervisor(config, options, log);
    const int status = supervisor.run();
    std::fclose(log);
    ::unlink(files.pid.c_str());
    return status;
}

}  // namespace psi::wrapper
