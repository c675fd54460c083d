// psi-connect: connects to one of the Psiphon servers it is given (OSSH or SSH through the
// patched libssh), keeps the tunnel up, and serves a SOCKS5 proxy on loopback. Notices on
// stdout as JSON lines in Psiphon's format; people's messages on stderr.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "connect/connected_report.hpp"
#include "connect/dial.hpp"
#include "connect/establish.hpp"
#include "connect/http_proxy_server.hpp"
#include "connect/network_watch.hpp"
#include "connect/notice.hpp"
#include "connect/packet_tunnel.hpp"
#include "connect/psiphon_api.hpp"
#include "connect/socks_server.hpp"
#include "connect/tunnel_session.hpp"
#include "core/atomic_file.hpp"
#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/event_loop.hpp"
#include "core/log.hpp"
#include "core/loopback_listener.hpp"
#include "core/printable.hpp"
#include "core/privileges.hpp"
#include "core/signals.hpp"
#include "engine/engine_run.hpp"
#include "servers/server_entry.hpp"
#include "tun/tun_device.hpp"

namespace {

using namespace psi;
using namespace psi::connect;
using Clock = std::chrono::steady_clock;

constexpr rlim_t wanted_open_files = 65536;

struct Options {
    std::string entries = "-";
    int socks_port = -1;  // -1: LocalSocksProxyPort, else 1080
    int http_port = -1;   // -1: LocalHttpProxyPort, else 8080
    std::vector<int> socks_fds;  // listening sockets handed down by psi up, instead of the port
    std::vector<int> http_fds;
    bool is_handshake = true;
    std::string identity_file;
    std::string discovered_file;
    std::vector<std::string> protocols;
    int parallel = 4;
    int dial_timeout = 20;
    int keepalive = 0;       // 0: every 60-120 s
    int establish_timeout = -1;  // -1: EstablishTunnelTimeoutSeconds, else 300; 0: forever
    std::string tun_name;        // the packet tunnel into this TUN; empty: proxies only
};

constexpr const char* packet_tunnel_channel = "tun@psiphon.ca";
constexpr auto first_retry_delay = std::chrono::seconds(2);
constexpr auto longest_retry_delay = std::chrono::seconds(30);
constexpr auto brief_tunnel = std::chrono::seconds(10);  // a tunnel that failed sooner was no good
constexpr auto packet_stats_interval = std::chrono::seconds(5);

std::vector<std::string> config_strings(const Config& config, const char* key) {
    std::vector<std::string> values;
    if (const json::Value* value = config.document.find(key); value && value->is_array())
        for (const json::Value& item : value->as_array())
            if (item.is_string()) values.push_back(item.as_string());
    return values;
}

int config_integer(const Config& config, const char* key, int fallback) {
    const json::Value* value = config.document.find(key);
    return value && value->is_number() ? static_cast<int>(value->as_double()) : fallback;
}

// Every (entry, protocol) pair to try: protocol by protocol in `protocols`' order (OSSH before
// SSH), and the entries in their order within each.
std::vector<Candidate> candidates_from(const std::string& text, const std::vector<std::string>& protocols) {
    const servers::DecodedList decoded = servers::decode_entry_list(text);
    for (const auto& [reason, count] : decoded.skipped)
        log::warning("skipped " + std::to_string(count) + " entry line(s): " + reason);
    std::vector<Candidate> candidates;
    for (const std::string& protocol : protocols)
        for (const servers::ServerEntry& entry : decoded.entries)
            if (!entry.protocols({protocol}).empty()) candidates.push_back(Candidate{entry, protocol});
    return candidates;
}

// The sockets psi up handed down, or new ones on both loopback addresses.
LoopbackListeners listeners(const std::vector<int>& fds, int port) {
    return fds.empty() ? listen_on_loopback(static_cast<std::uint16_t>(port)) : adopt_loopback_listeners(fds);
}

class Connector {
public:
    // `tun`: attached for the packet tunnel, or not open.
    Connector(const Options& options, const Config& config, std::vector<Candidate> candidates, UniqueFd tun,
              LoopbackListeners socks, LoopbackListeners http)
        : options_(options),
          config_(config),
          candidates_(std::move(candidates)),
          socks_(loop_, std::move(socks), current_session(), totals_, options.is_handshake),
          http_(loop_, std::move(http), current_session(), totals_) {
        tun_ = std::move(tun);
        if (tun_.is_open()) packet_addresses_ = packet_tunnel_addresses(engine::engine_settings(config, engine::RunOptions{}));
        settings_.is_handshake = options.is_handshake;
        settings_.identity_file = options.identity_file;
        settings_.timeout = std::chrono::seconds(options.dial_timeout);
        settings_.session_id = make_session_id();
        std::set<std::string> servers;
        for (const Candidate& candidate : candidates_) servers.insert(candidate.entry.ip_address());
        settings_.server_entry_count = servers.size();
        if (options.is_handshake) {
            settings_.identity = client_identity(config);
            connected_.emplace(settings_.identity);
        }
        if (options.keepalive > 0) {
            keepalive_.min_interval = keepalive_.max_interval = std::chrono::seconds(options.keepalive);
            keepalive_.timeout = std::min(keepalive_.timeout, std::chrono::seconds(options.keepalive));
            keepalive_.probe_timeout = std::min(keepalive_.probe_timeout, keepalive_.timeout);
        }
    }

    int run(int signal_fd) {
        if (tun_.is_open()) log::info("packet tunnel into " + options_.tun_name);
        notices_.emit("ListeningSocksProxyPort", json::Object{{"port", static_cast<std::int64_t>(socks_.port())}});
        notices_.emit("ListeningHttpProxyPort", json::Object{{"port", static_cast<std::int64_t>(http_.port())}});
        log::info("SOCKS5 proxy on localhost:" + std::to_string(socks_.port()) + ", HTTP proxy on localhost:" +
                  std::to_string(http_.port()));
        loop_.add(signal_fd, EPOLLIN, [this, signal_fd](std::uint32_t) {
            signalfd_siginfo info{};
            (void)!::read(signal_fd, &info, sizeof info);
            loop_.stop();
        });
        loop_.every(std::chrono::milliseconds(1000), [this] { tick(); });
        watch_network();
        establishing_since_ = Clock::now();
        loop_.defer([this] { start_establishing(); });  // inside run(), so that a failure can stop it
        loop_.run();
        shut_down();
        return exit_code_;
    }

private:
    LocalProxy::SessionSource current_session() {
        return [this]() { return session_ && !session_->has_failed() ? session_.get() : nullptr; };
    }

    // Without the watch, a dead path is still found by the keepalive, only later.
    void watch_network() {
        try {
            network_ = std::make_unique<NetworkWatch>(loop_, config_.tun_name, [this] { on_network_changed(); });
        } catch (const Error& error) {
            log::warning(error.what());
        }
    }

    // A new uplink, or the old one gone: the tunnel's TCP connection may be dead without a
    // word. Probe it now; if there is no tunnel, try again now rather than after the backoff.
    void on_network_changed() {
        log::debug("the network changed");
        if (session_) {
            session_->probe();
        } else if (!establisher_ && Clock::now() - last_network_retry_ >= brief_tunnel) {
            // At most once in a while: links that come and go must not defeat the backoff.
            last_network_retry_ = Clock::now();
            retry_at_ = Clock::now();
        }
    }

    void close_connections() {
        socks_.close_all();
        http_.close_all();
    }

    void start_establishing() {
        if (candidates_.empty()) {
            fail_for_good("no usable server entry (each needs an OSSH or SSH port and capability)");
            return;
        }
        settings_.established_tunnels_count = tunnels_established_;
        establisher_ = std::make_unique<Establisher>(candidates_, settings_, static_cast<std::size_t>(options_.parallel));
        loop_.add(establisher_->descriptor(), EPOLLIN, [this](std::uint32_t) { on_established(); });
    }

    void on_established() {
        loop_.remove(establisher_->descriptor());
        std::unique_ptr<Tunnel> tunnel = establisher_->take_tunnel();
        const std::vector<std::string> failures = establisher_->failures();
        establisher_.reset();
        for (const std::string& failure : failures) log::warning(failure);  // a wrong host key, say
        if (!tunnel) {
            notices_.emit("Warning", json::Object{{"message", "no server could be reached (" +
                                                                   std::to_string(failures.size()) + " tried)"}});
            retry_at_ = Clock::now() + retry_delay_;
            retry_delay_ = std::min(retry_delay_ * 2, longest_retry_delay);
            return;
        }
        tunnel_up_since_ = Clock::now();
        const auto establishment_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(tunnel_up_since_ - establishing_since_).count();
        ++tunnels_established_;
        prefer(tunnel->candidate());
        announce(*tunnel);
        session_ = std::make_unique<TunnelSession>(loop_, std::move(tunnel), keepalive_,
                                                   [this](const std::string& reason) { on_tunnel_failed(reason); });
        if (connected_) connected_->start(*session_, session_->tunnel().candidate().protocol, establishment_ms);
        if (tun_.is_open()) {
            open_packet_tunnel();
            return;
        }
        notices_.emit("Tunnels", json::Object{{"count", std::int64_t{1}}});
    }

    // Tunnels count 1 once the packet tunnel runs. A server that refuses it (no RunPacketTunnel)
    // leaves the proxies only: the TUN is let go for psi-tun run, for the rest of this run.
    void open_packet_tunnel() {
        session_->open_custom(packet_tunnel_channel, [this](OpenResult result) {
            if (!session_ || session_->has_failed()) return;
            if (!result.channel && result.reply != proxy::SocksReply::not_allowed) {
                // Not a refusal (no answer in time, say): this tunnel is no good; another may be.
                on_tunnel_failed("the packet tunnel did not open");
                return;
            }
            if (!result.channel) {
                log::warning(std::string("the server refused the packet tunnel (") + packet_tunnel_channel +
                             "); SOCKS and HTTP proxies only");
                notices_.emit("PacketTunnel", json::Object{{"state", "refused"}});
                tun_.reset();
            } else {
                packet_tunnel_ = std::make_unique<PacketTunnel>(
                    loop_, *session_, tun_.get(), result.channel, packet_addresses_, packet_counters_,
                    [this](const std::string& reason) { on_tunnel_failed(reason); });
                notices_.emit("PacketTunnel", json::Object{{"state", "up"}, {"device", options_.tun_name}});
            }
            notices_.emit("Tunnels", json::Object{{"count", std::int64_t{1}}});
        });
    }

    // The server that worked is tried first next time (affinity), with its protocol.
    void prefer(const Candidate& winner) {
        const auto same = [&](const Candidate& candidate) {
            return candidate.protocol == winner.protocol && candidate.entry.ip_address() == winner.entry.ip_address();
        };
        std::stable_partition(candidates_.begin(), candidates_.end(), same);
    }

    void announce(const Tunnel& tunnel) {
        const Candidate& candidate = tunnel.candidate();
        log::info("tunnel up: " + candidate.label());
        notices_.emit("ActiveTunnel", json::Object{{"protocol", candidate.protocol}});
        notices_.emit("ConnectedServerRegion", json::Object{{"serverRegion", candidate.entry.region()}});
        const HandshakeResponse& handshake = tunnel.handshake();
        if (!handshake.client_region.empty())
            notices_.emit("ClientRegion", json::Object{{"regionCode", handshake.client_region}});
        std::vector<std::string> shown;
        for (const std::string& url : handshake.homepages)
            if (shown.size() < max_homepages && is_homepage_url(url) &&
                std::find(shown.begin(), shown.end(), url) == shown.end()) {
                notices_.emit("Homepage", json::Object{{"url", url}});
                shown.push_back(url);
            }
        if (shown.size() < handshake.homepages.size())
            log::info("the server gave " + std::to_string(handshake.homepages.size()) + " homepages; shown: " +
                      std::to_string(shown.size()) + " (at most " + std::to_string(max_homepages) +
                      " https URLs of printable ASCII)");
        save_discovered(handshake.encoded_server_list);
    }

    // Entries the handshake handed out, where psi-servers import reads them.
    void save_discovered(const std::vector<std::string>& lines) {
        if (options_.discovered_file.empty() || lines.empty()) return;
        std::string text;
        for (const std::string& line : lines) text += line + "\n";
        try {
            write_file_atomically(options_.discovered_file, text, 0600);
        } catch (const Error& error) {
            log::warning(std::string("cannot save the discovered servers: ") + error.what());
        }
    }

    void on_tunnel_failed(const std::string& reason) {
        if (is_tunnel_failing_) return;  // the packet tunnel and the session may both report it
        is_tunnel_failing_ = true;
        log::warning(reason);
        notices_.emit("Tunnels", json::Object{{"count", std::int64_t{0}}});
        // The session goes once nothing of it runs any more; then establishment starts again.
        loop_.defer([this] {
            is_tunnel_failing_ = false;
            close_connections();
            packet_tunnel_.reset();
            session_.reset();
            establishing_since_ = Clock::now();
            // A server that takes the tunnel and drops it at once (its packet tunnel, say) is
            // tried again only after the wait, which doubles each time; a tunnel that lasted
            // starts establishing again at once.
            if (Clock::now() - tunnel_up_since_ < brief_tunnel) {
                retry_at_ = Clock::now() + retry_delay_;
                retry_delay_ = std::min(retry_delay_ * 2, longest_retry_delay);
                return;  // tick() starts it
            }
            retry_delay_ = first_retry_delay;
            start_establishing();
        });
    }

    void tick() {
        // A deleted TUN does not come back to this descriptor: psi up makes it anew and starts
        // psi-connect again.
        if (tun_.is_open() && !tun::is_persistent(tun_.get())) {
            fail_for_good("the TUN device " + options_.tun_name + " went away (psi-tun up makes it)");
            return;
        }
        socks_.tick();
        http_.tick();
        if (session_) session_->tick();
        if (session_ && connected_) connected_->tick(*session_);
        if (packet_tunnel_ && Clock::now() >= next_packet_stats_) emit_packet_stats();
        if (!session_ && !establisher_ && Clock::now() >= retry_at_) {
            const int limit = options_.establish_timeout;
            if (limit > 0 && Clock::now() - establishing_since_ >= std::chrono::seconds(limit)) {
                fail_for_good("no tunnel came up within " + std::to_string(limit) + " s");
                return;
            }
            start_establishing();
        }
    }

    // The packet tunnel's counters, for psi status, every few seconds while they change.
    void emit_packet_stats() {
        next_packet_stats_ = Clock::now() + packet_stats_interval;
        const PacketTunnelCounters& counters = packet_counters_;
        const std::uint64_t moved = counters.packets_up + counters.packets_down + counters.dropped_up +
                                    counters.refused_down + counters.unwritten_down;
        if (moved == last_packet_stats_) return;
        last_packet_stats_ = moved;
        const auto number = [](std::uint64_t value) { return static_cast<std::int64_t>(value); };
        notices_.emit("PacketTunnelStats",
                      json::Object{{"packetsUp", number(counters.packets_up)},
                                   {"packetsDown", number(counters.packets_down)},
                                   {"bytesUp", number(counters.bytes_up)},
                                   {"bytesDown", number(counters.bytes_down)},
                                   {"droppedUp", number(counters.dropped_up)},
                                   {"refusedDown", number(counters.refused_down)},
                                   {"unwrittenDown", number(counters.unwritten_down)}});
    }

    std::string last_write_error() const {
        const int error = packet_counters_.last_write_error;
        return error ? std::string(": ") + std::strerror(error) : std::string();
    }

    void fail_for_good(const std::string& reason) {
        log::error(reason);
        notices_.emit("Error", json::Object{{"message", reason}});
        exit_code_ = exit_status::failure;
        loop_.stop();
    }

    void shut_down() {
        if (establisher_) {
            loop_.remove(establisher_->descriptor());
            establisher_.reset();
        }
        close_connections();
        packet_tunnel_.reset();
        if (tun_.is_open())
            log::info("packet tunnel: " + std::to_string(packet_counters_.packets_up) + " packets up, " +
                      std::to_string(packet_counters_.packets_down) + " down; dropped " +
                      std::to_string(packet_counters_.dropped_up) + " up (filtered), " +
                      std::to_string(packet_counters_.refused_down) + " down (refused), " +
                      std::to_string(packet_counters_.unwritten_down) + " down (TUN full" + last_write_error() + ")");
        if (session_) {
            session_.reset();
            notices_.emit("Tunnels", json::Object{{"count", std::int64_t{0}}});
        }
        notices_.emit("Exiting");
    }

    const Options& options_;
    const Config& config_;
    std::vector<Candidate> candidates_;
    std::size_t tunnels_established_ = 0;
    EventLoop loop_;
    NoticeWriter notices_;
    RelayTotals totals_;
    DialSettings settings_;
    KeepaliveSettings keepalive_;
    std::unique_ptr<TunnelSession> session_;
    std::optional<ConnectedReport> connected_;  // with the Psiphon handshake only
    SocksServer socks_;
    HttpProxyServer http_;
    std::unique_ptr<Establisher> establisher_;
    std::unique_ptr<NetworkWatch> network_;
    UniqueFd tun_;
    PacketTunnelAddresses packet_addresses_;
    PacketTunnelCounters packet_counters_;
    std::unique_ptr<PacketTunnel> packet_tunnel_;  // declared after session_: destroyed first
    bool is_tunnel_failing_ = false;
    Clock::time_point retry_at_{};
    Clock::time_point establishing_since_{};
    Clock::time_point tunnel_up_since_{};
    Clock::time_point last_network_retry_{};
    Clock::time_point next_packet_stats_{};
    std::uint64_t last_packet_stats_ = 0;
    std::chrono::seconds retry_delay_ = first_retry_delay;
    int exit_code_ = exit_status::ok;
};

}  // namespace

int main(int argc, char** argv) {
    CommonOptions common;
    Options options;
    CLI::App app{"psi-connect: a Psiphon tunnel (OSSH or SSH) to one of the given servers, with SOCKS5 and HTTP\n"
                 "proxies on loopback. Notices go to stdout as JSON lines; messages to stderr.",
                 "psi-connect"};
    add_common_options(app, common);
    app.add_option("--entries", options.entries, "Server entry lines, FILE or - for stdin (psi-servers pick)")
        ->capture_default_str();
    app.add_option("--socks", options.socks_port, "SOCKS5 port on 127.0.0.1 and [::1] (LocalSocksProxyPort, else 1080; 0: any)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--http", options.http_port, "HTTP proxy port on 127.0.0.1 and [::1] (LocalHttpProxyPort, else 8080; 0: any)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--socks-fd", options.socks_fds, "Serve SOCKS5 on this inherited listening socket (psi up)")
        ->excludes("--socks");
    app.add_option("--http-fd", options.http_fds, "Serve the HTTP proxy on this inherited listening socket (psi up)")
        ->excludes("--http");
    app.add_option("--discovered", options.discovered_file, "Write the servers the handshake hands out to FILE");
    app.add_option("--protocols", options.protocols, "Tunnel protocols to use, in order (LimitTunnelProtocols)")
        ->check(CLI::IsMember({"OSSH", "SSH"}))
        ->delimiter(',');
    app.add_option("--parallel", options.parallel, "Servers dialled at once")->check(CLI::Range(1, 32))->capture_default_str();
    app.add_option("--dial-timeout", options.dial_timeout, "Seconds for one server to come up")
        ->check(CLI::Range(1, 300))
        ->capture_default_str();
    app.add_option("--establish-timeout", options.establish_timeout,
                   "Seconds to keep trying before giving up (EstablishTunnelTimeoutSeconds, else 300; 0: forever)")
        ->check(CLI::Range(0, 86400));
    app.add_option("--keepalive", options.keepalive, "Seconds between keepalives (default: 60-120 at random)")
        ->check(CLI::Range(1, 3600));
    app.add_flag("!--no-handshake", options.is_handshake, "A generic SSH server: no Psiphon handshake");
    app.add_option("--identity", options.identity_file, "Public-key authentication with this private key (generic SSH)")
        ->check(CLI::ExistingFile);
    app.add_option("--tun", options.tun_name,
                   "Carry this TUN's packets over Psiphon's packet tunnel (psi-tun up makes it); the proxies stay");
    app.footer("Examples:\n  psi-servers pick | psi-connect --entries -\n"
               "  psi-connect --entries servers.txt --socks 1080 --protocols OSSH\n"
               "  psi-connect --entries my-sshd.txt --no-handshake --identity ~/.ssh/id_ed25519\n"
               "  psi-servers pick | psi-connect --entries - --tun PsiphonTUN\n"
               "Exit status: 0 stopped by a signal, 1 no tunnel could be kept up, 2 usage. See psi-connect(8).");

    return run_program(app, argc, argv, common, [&]() -> int {
        const Config config = load_config_from(common);
        if (options.socks_port < 0) options.socks_port = local_socks_port(config);
        if (options.http_port < 0) options.http_port = local_http_port(config);
        if (options.establish_timeout < 0)
            options.establish_timeout = config_integer(config, "EstablishTunnelTimeoutSeconds", 300);
        if (options.protocols.empty()) {
            const std::vector<std::string> limited = config_strings(config, "LimitTunnelProtocols");
            for (const std::string& protocol : limited) {
                if (protocol == "OSSH" || protocol == "SSH") options.protocols.push_back(protocol);
                else log::warning("LimitTunnelProtocols: psi-connect does not speak " + protocol + "; ignored");
            }
            if (!limited.empty() && options.protocols.empty())
                throw Error("LimitTunnelProtocols names no protocol psi-connect speaks (OSSH, SSH)", exit_status::usage);
        }
        if (options.protocols.empty()) options.protocols = {"OSSH", "SSH"};
        if (options.is_handshake) client_identity(config);  // a bad identity is a usage error, before anything else

        // Everything root may read is read first; then the tunnel user, with no capability,
        // before any network socket exists.
        const std::string text = options.entries == "-" ? read_all(STDIN_FILENO, "standard input", 64 << 20)
                                                        : read_file(options.entries);
        raise_open_file_limit(wanted_open_files);
        // The TUN too, for good: while a tunnel is redone, packets wait in its queue or are
        // dropped there, and go nowhere else.
        UniqueFd tun;
        if (::geteuid() == 0) {
            const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
            if (!options.tun_name.empty()) tun = tun::attach_users_tun(options.tun_name, user, tun::TunFraming::plain);
            drop_privileges(user);
        } else if (!options.tun_name.empty()) {
            tun = tun::attach_tun(options.tun_name, UniqueFd(), tun::TunFraming::plain);
        }
        if (::geteuid() == 0) throw Error("psi-connect never runs as root");

        initialize_libssh();
        UniqueFd signal_fd = receive_signals({SIGTERM, SIGINT, SIGHUP});
        Connector connector(options, config, candidates_from(text, options.protocols), std::move(tun),
                            listeners(options.socks_fds, options.socks_port),
                            listeners(options.http_fds, options.http_port));
        return connector.run(signal_fd.get());
    });
}
