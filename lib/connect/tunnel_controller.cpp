#include "connect/tunnel_controller.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <set>

#include "connect/connected_report.hpp"
#include "connect/establish.hpp"
#include "connect/http_proxy_server.hpp"
#include "connect/network_watch.hpp"
#include "connect/notice.hpp"
#include "connect/packet_tunnel.hpp"
#include "connect/protocols.hpp"
#include "connect/psiphon_api.hpp"
#include "connect/socks_server.hpp"
#include "connect/tunnel_session.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/event_loop.hpp"
#include "core/log.hpp"
#include "core/printable.hpp"
#include "engine/engine_run.hpp"
#include "tun/tun_device.hpp"

namespace psi::connect {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* packet_tunnel_channel = "tun@psiphon.ca";
constexpr auto first_retry_delay = std::chrono::seconds(2);
constexpr auto longest_retry_delay = std::chrono::seconds(30);
constexpr auto brief_tunnel = std::chrono::seconds(10);  // a tunnel that failed sooner was no good
constexpr auto packet_stats_interval = std::chrono::seconds(5);

}  // namespace

class TunnelController::Impl {
public:
    // `tun`: attached for the packet tunnel, or not open.
    Impl(const ConnectOptions& options, const Config& config, std::vector<Candidate> candidates, UniqueFd tun,
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
        notices_.emit(notice::ListeningSocksProxyPort{socks_.port()});
        notices_.emit(notice::ListeningHttpProxyPort{http_.port()});
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
            fail_for_good("no usable server entry (each needs an " + spoken_protocol_list(" or ") + " port and capability)");
            return;
        }
        settings_.established_tunnels_count = tunnels_established_;
        establisher_ = std::make_unique<Establisher>(candidates_, settings_, static_cast<std::size_t>(options_.parallel));
        loop_.add(establisher_->descriptor(), EPOLLIN, [this](std::uint32_t) { on_established(); });
    }

    void on_established() {
        loop_.remove(establisher_->descriptor());
        std::unique_ptr<Tunnel> tunnel = establisher_->take_tunnel();
        const std::vector<DialFailure> failures = establisher_->failures();
        establisher_.reset();
        for (const DialFailure& failure : failures) log::warning(failure.line());  // a wrong host key, say
        report_failures(failures, static_cast<bool>(tunnel));
        if (!tunnel) {
            notices_.emit(notice::Warning{"no server could be reached (" + std::to_string(failures.size()) + " tried)"});
            retry_at_ = Clock::now() + retry_delay_;
            retry_delay_ = std::min(retry_delay_ * 2, longest_retry_delay);
            return;
        }
        tunnel_up_since_ = Clock::now();
        const auto establishment_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(tunnel_up_since_ - establishing_since_).count();
        ++tunnels_established_;
        report_outcome(tunnel->candidate(), servers::FailureClass::none);
        prefer(tunnel->candidate());
        announce(*tunnel);
        session_ = std::make_unique<TunnelSession>(loop_, std::move(tunnel), keepalive_,
                                                   [this](const std::string& reason) { on_tunnel_failed(reason); });
        if (connected_) connected_->start(*session_, session_->tunnel().candidate().protocol, establishment_ms);
        if (tun_.is_open()) {
            open_packet_tunnel();
            return;
        }
        notices_.emit(notice::Tunnels{1});
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
                notices_.emit(notice::PacketTunnel{notice::PacketTunnel::State::refused, {}});
                tun_.reset();
            } else {
                packet_tunnel_ = std::make_unique<PacketTunnel>(
                    loop_, *session_, tun_.get(), std::move(result.channel), packet_addresses_, packet_counters_,
                    [this](const std::string& reason) { on_tunnel_failed(reason); });
                notices_.emit(notice::PacketTunnel{notice::PacketTunnel::State::up, options_.tun_name});
            }
            notices_.emit(notice::Tunnels{1});
        });
    }

    // For the server memory (psi-servers record, through psi up). When every server was
    // unreachable and none came up, the machine's own network is down: that says nothing of
    // the servers, and would count against all of them alike.
    void report_failures(const std::vector<DialFailure>& failures, bool has_tunnel) {
        const auto is_unreachable = [](const DialFailure& failure) {
            return failure.failure == servers::FailureClass::unreachable;
        };
        if (!has_tunnel && std::all_of(failures.begin(), failures.end(), is_unreachable)) return;
        for (const DialFailure& failure : failures)
            if (failure.failure != servers::FailureClass::none) report_outcome(failure.candidate, failure.failure);
    }

    void report_outcome(const Candidate& candidate, servers::FailureClass failure) {
        const bool is_connected = failure == servers::FailureClass::none;
        notices_.emit(notice::ServerOutcome{candidate.entry.ip_address(), candidate.protocol, is_connected,
                                            is_connected ? std::string() : servers::failure_class_name(failure)});
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
        notices_.emit(notice::ActiveTunnel{candidate.protocol});
        notices_.emit(notice::ConnectedServerRegion{candidate.entry.region()});
        const HandshakeResponse& handshake = tunnel.handshake();
        if (!handshake.client_region.empty())
            notices_.emit(notice::ClientRegion{handshake.client_region});
        std::vector<std::string> shown;
        for (const std::string& url : handshake.homepages)
            if (shown.size() < max_homepages && is_homepage_url(url) &&
                std::find(shown.begin(), shown.end(), url) == shown.end()) {
                notices_.emit(notice::Homepage{url});
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
        if (session_ && Clock::now() - tunnel_up_since_ < brief_tunnel)
            report_outcome(session_->tunnel().candidate(), servers::FailureClass::dropped);
        notices_.emit(notice::Tunnels{0});
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
        notices_.emit(notice::PacketTunnelStats{number(counters.packets_up), number(counters.packets_down),
                                                number(counters.bytes_up), number(counters.bytes_down),
                                                number(counters.dropped_up), number(counters.refused_down),
                                                number(counters.unwritten_down)});
    }

    std::string last_write_error() const {
        const int error = packet_counters_.last_write_error;
        return error ? std::string(": ") + std::strerror(error) : std::string();
    }

    void fail_for_good(const std::string& reason) {
        log::error(reason);
        notices_.emit(notice::Error{reason});
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
            notices_.emit(notice::Tunnels{0});
        }
        notices_.emit(notice::Exiting{});
    }

    const ConnectOptions& options_;
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

TunnelController::TunnelController(const ConnectOptions& options, const Config& config,
                                   std::vector<Candidate> candidates, UniqueFd tun, LoopbackListeners socks,
                                   LoopbackListeners http)
    : impl_(std::make_unique<Impl>(options, config, std::move(candidates), std::move(tun), std::move(socks),
                                   std::move(http))) {}

TunnelController::~TunnelController() = default;

int TunnelController::run(int signal_fd) { return impl_->run(signal_fd); }

}  // namespace psi::connect
