#include "engine/tcp_nat.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"
#include "packet/packet_builder.hpp"

namespace psi::engine {

using packet::Endpoint;
using packet::IpAddress;
using packet::IpVersion;
using packet::PacketView;
using packet::TransportChecksum;
using packet::Unreachable;
using packet::build_tcp_reset;
using packet::build_unreachable;
using packet::parse_packet;
using packet::rewrite_endpoints;

namespace {

using namespace std::chrono_literals;

constexpr std::uint16_t first_nat_port = 1024;
constexpr std::uint16_t last_nat_port = 65535;
// The listener side's TIME_WAIT is 60 s (docs/packet-engine.md §3.5).
constexpr auto port_quarantine = 65s;
// Longer than an application's SYN retries (tcp_syn_retries 6: about 127 s).
constexpr auto unaccepted_timeout = 130s;
// The SOCKS CONNECT through the tunnel: the application has given up long before.
constexpr auto connect_timeout = 75s;
// A closed flow's mapping lives on for the last FIN/ACK and TIME_WAIT segments.
constexpr auto closed_linger = 120s;
constexpr int listen_backlog = 4096;
// Flows waiting for the proxy at once: more are reset, so that no local program can hold every
// NAT port (or descriptor) with SYNs to destinations that never answer.
constexpr std::size_t max_connecting_flows = 2048;
// What one flow may queue inside the engine (docs/packet-engine.md §3.6, bufferbloat): the accepted socket's
// receive buffer (the kernel doubles it: 2 MiB) and 1 MiB unsent towards the proxy. Far more than
// a local round trip needs at 10 Gbit/s, far less than the 19 MB receive autotuning reached in the
// benchmark; and a bulk flow wakes the engine less often than with 128 KiB unsent (upload through
// ssh -D 3.7 -> 4.1 Gbit/s, interleaved runs).
constexpr int accepted_receive_buffer = 1 << 20;
constexpr int not_sent_low_water = 1 << 20;

bool is_pure_syn(const PacketView& view) {
    return (view.tcp_flags & (packet::tcp_flag::syn | packet::tcp_flag::ack | packet::tcp_flag::rst)) ==
           packet::tcp_flag::syn;
}

void set_option(int socket, int level, int name, int value) { ::setsockopt(socket, level, name, &value, sizeof value); }

}  // namespace

TcpNat::TcpNat(const EngineContext& context)
    : loop_(context.loop),
      settings_(context.settings),
      output_(context.output),
      stats_(context.stats),
      proxy_health_(context.proxy_health),
      fast_path_(context.fast_path),
      table_(first_nat_port, last_nat_port, port_quarantine),
      ipv4_(open_listener(context.settings.tun_address_ipv4)),
      ipv6_(open_listener(context.settings.tun_address_ipv6)) {
    for (const Listener* listener : {&ipv4_, &ipv6_}) {
        const int fd = listener->socket.get();
        loop_.add(fd, EPOLLIN, [this, fd](std::uint32_t) { on_accept(fd); });
    }
}

TcpNat::~TcpNat() {
    flows_.clear();  // relays remove themselves from the loop
    loop_.remove(ipv4_.socket.get());
    loop_.remove(ipv6_.socket.get());
}

TcpNat::Listener TcpNat::open_listener(const IpAddress& address) {
    const bool is_v4 = address.version == IpVersion::v4;
    Listener listener;
    listener.socket.reset(::socket(is_v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listener.socket.is_open()) throw_system_error("cannot create the TCP listener", errno);
    const int fd = listener.socket.get();
    // The TUN's IPv6 address may still be tentative, or the TUN down, while we start.
    set_option(fd, is_v4 ? IPPROTO_IP : IPPROTO_IPV6, is_v4 ? IP_FREEBIND : IPV6_FREEBIND, 1);
    if (!is_v4) set_option(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    set_option(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    set_option(fd, SOL_SOCKET, SO_RCVBUF, accepted_receive_buffer);  // the accepted sockets inherit it
    socklen_t length = 0;
    sockaddr_storage bind_address = socket_address_of(Endpoint{address, 0}, length);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&bind_address), length) != 0)
        throw_system_error("cannot bind the TCP listener to " + address.text(), errno);
    if (::listen(fd, listen_backlog) != 0) throw_system_error("cannot listen on " + address.text(), errno);
    sockaddr_storage bound{};
    length = sizeof bound;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
    listener.address = *endpoint_of_socket(bound);
    return listener;
}

TransportChecksum TcpNat::checksum_kind(const VnetHeader& header) {
    return (header.flags & vnet_needs_checksum) ? TransportChecksum::partial : TransportChecksum::complete;
}

void TcpNat::on_packet(std::span<std::uint8_t> packet, const PacketView& view, const VnetHeader& header) {
    const Listener& listener = listener_for(view.version);
    if (view.source == listener.address && view.destination.address == nat_source_for(view.version))
        from_listener(packet, view, header);
    else
        from_application(packet, view, header);
}

void TcpNat::from_application(std::span<std::uint8_t> packet, const PacketView& view, const VnetHeader& header) {
    const Flow flow{view.source, view.destination};
    if (const auto port = table_.port_of(flow)) {
        FlowState& state = flows_.at(*port);
        if (is_pure_syn(view) && state.phase == Phase::closed) {
            forget(*port, Clock::now());  // the application reused its port: a new connection
        } else if (state.phase == Phase::connecting) {
            if (is_pure_syn(view)) {  // the latest SYN is the one injected
                state.held_syn.assign(packet.begin(), packet.begin() + static_cast<std::ptrdiff_t>(view.total_length));
                state.held_header = header;
            }
            stats_.count(Drop::held_syn);
            return;
        } else {
            const Flow leg = nat_leg(view.version, *port);
            rewrite_endpoints(packet, view, leg.application, leg.destination, checksum_kind(header));
            output_.send(packet.first(view.total_length), &header);
            return;
        }
    }
    if (is_pure_syn(view)) {
        start_flow(packet.first(view.total_length), view, header);
    } else if (!(view.tcp_flags & packet::tcp_flag::rst)) {
        // A segment of no flow we know (psi-tun restarted): end it at once instead of a hang.
        stats_.count(Drop::no_flow);
        output_.send(build_tcp_reset(view));
    }
}

// Only the listener's side of a NAT leg we injected: a local process that binds the NAT source
// (IP_FREEBIND) and connects to the listener makes it answer into the TUN too.
void TcpNat::from_listener(std::span<std::uint8_t> packet, const PacketView& view, const VnetHeader& header) {
    const Flow* flow = table_.flow_of(view.destination.port);
    const auto state = flows_.find(view.destination.port);
    if (!flow || flow->application.address.version != view.version || state == flows_.end() ||
        state->second.phase == Phase::connecting) {
        stats_.count(Drop::no_flow);
        return;
    }
    rewrite_endpoints(packet, view, flow->destination, flow->application, checksum_kind(header));
    output_.send(packet.first(view.total_length), &header);
}

void TcpNat::start_flow(std::span<const std::uint8_t> packet, const PacketView& view, const VnetHeader& header) {
    const auto target = proxy_destination(settings_, view.destination);
    if (!target) {
        stats_.count(Drop::bad_destination);
        output_.send(build_tcp_reset(view));
        return;
    }
    if (connecting_flows_ >= max_connecting_flows) {
        stats_.count(Drop::too_many_pending);
        output_.send(build_tcp_reset(view));
        return;
    }
    const Clock::time_point now = Clock::now();
    const auto port = table_.allocate(Flow{view.source, view.destination}, now);
    if (!port) {
        stats_.count(Drop::nat_ports_exhausted);
        output_.send(build_tcp_reset(view));
        return;
    }
    FlowState& state = flows_[*port];
    state = FlowState{};
    state.since = now;
    state.held_syn.assign(packet.begin(), packet.end());
    state.held_header = header;
    state.handshake = std::make_unique<proxy::SocksHandshake>(settings_.socks, proxy::SocksCommand::connect,
                                                              socks_address_of(*target));
    ++connecting_flows_;
    ++stats_.tcp_flows_opened;
    const std::uint16_t nat_port = *port;
    if (state.handshake->step() == proxy::SocksHandshake::Step::failed) {
        on_handshake(nat_port);
        return;
    }
    loop_.add(state.handshake->fd(), state.handshake->wanted_events(), [this, nat_port](std::uint32_t) {
        FlowState& flow = flows_.at(nat_port);
        if (flow.handshake->advance())
            on_handshake(nat_port);
        else
            loop_.modify(flow.handshake->fd(), flow.handshake->wanted_events());
    });
}

void TcpNat::on_handshake(std::uint16_t port) {
    FlowState& state = flows_.at(port);
    loop_.remove(state.handshake->fd());
    if (!state.handshake->succeeded()) {
        if (state.handshake->has_proxy_refused()) {
            proxy_health_.reached();
            log::debug("a connection failed: " + state.handshake->failure());
        } else {
            proxy_health_.failed(state.handshake->failure());
        }
        stats_.count(Drop::proxy_refused);
        refuse(state.held_syn, state.handshake->reply());
        forget(port, Clock::now());
        return;
    }
    proxy_health_.reached();
    state.upstream = state.handshake->release();
    state.handshake.reset();
    --connecting_flows_;  // forget() counts the ones that fail
    set_option(state.upstream.get(), IPPROTO_TCP, TCP_NOTSENT_LOWAT, not_sent_low_water);
    auto parsed = parse_packet(state.held_syn);
    const auto* view = std::get_if<PacketView>(&parsed);
    if (!view) {  // it parsed when it was held
        forget(port, Clock::now());
        return;
    }
    const Flow leg = nat_leg(view->version, port);
    rewrite_endpoints(state.held_syn, *view, leg.application, leg.destination, checksum_kind(state.held_header));
    state.phase = Phase::injected;
    output_.send(state.held_syn, &state.held_header);
    state.held_syn = {};
}

void TcpNat::refuse(std::span<const std::uint8_t> syn, proxy::SocksReply reply) {
    auto parsed = parse_packet(syn);
    const auto* view = std::get_if<PacketView>(&parsed);
    if (!view) return;
    switch (reply) {
        case proxy::SocksReply::network_unreachable:
            output_.send(build_unreachable(syn, *view, Unreachable::network));
            break;
        case proxy::SocksReply::host_unreachable:
            output_.send(build_unreachable(syn, *view, Unreachable::host));
            break;
        case proxy::SocksReply::not_allowed:
            output_.send(build_unreachable(syn, *view, Unreachable::administratively_prohibited));
            break;
        default:
            output_.send(build_tcp_reset(*view));
    }
}

void TcpNat::on_accept(int listener) {
    for (;;) {
        sockaddr_storage peer{};
        socklen_t length = sizeof peer;
        UniqueFd accepted(::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!accepted.is_open()) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return;
            // Out of descriptors or memory: the pending connection would wake the loop at once,
            // forever. Stop watching the listeners until the next garbage collection.
            if (!are_listeners_paused_)
                log::warning(std::string("cannot accept connections: ") + std::strerror(errno) + "; waiting");
            pause_listeners();
            return;
        }
        const Endpoint from = endpoint_of_socket(peer).value_or(Endpoint{});
        // Only the NAT legs we injected: a local process connecting to the listener directly
        // gets nothing (docs/packet-engine.md §3.1).
        const auto found = flows_.find(from.port);
        if (from.address != nat_source_for(from.address.version) || found == flows_.end() ||
            found->second.phase != Phase::injected) {
            const linger abort{1, 0};
            ::setsockopt(accepted.get(), SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
            continue;
        }
        const std::uint16_t port = from.port;
        FlowState& state = found->second;
        set_option(accepted.get(), IPPROTO_TCP, TCP_NODELAY, 1);
        try {
            state.relay = std::make_unique<Relay>(loop_, std::move(accepted), std::move(state.upstream), stats_.tcp_bytes,
                                                  [this, port](Relay::Outcome) {
                                                      FlowState& flow = flows_.at(port);
                                                      flow.phase = Phase::closed;
                                                      flow.since = Clock::now();
                                                      flow.relay.reset();  // it touches nothing after this call
                                                  });
        } catch (const Error& error) {
            log::warning(error.what());
            forget(port, Clock::now());
            continue;
        }
        state.phase = Phase::relaying;
        // From here on the kernel may NAT the flow's segments as well; SYN, FIN and RST still
        // come here.
        if (fast_path_) {
            const Flow& flow = *table_.flow_of(port);
            state.is_in_fast_path = fast_path_->add(flow, nat_leg(flow.application.address.version, port));
        }
    }
}

void TcpNat::forget(std::uint16_t port, Clock::time_point now) {
    const auto found = flows_.find(port);
    if (found != flows_.end()) {
        if (found->second.is_in_fast_path) {
            const Flow& flow = *table_.flow_of(port);
            fast_path_->remove(flow, nat_leg(flow.application.address.version, port));
        }
        if (found->second.handshake) {
            loop_.remove(found->second.handshake->fd());
            if (found->second.phase == Phase::connecting) --connecting_flows_;
        }
        flows_.erase(found);
    }
    table_.release(port, now);
}

void TcpNat::pause_listeners() {
    if (are_listeners_paused_) return;
    are_listeners_paused_ = true;
    loop_.modify(ipv4_.socket.get(), 0);
    loop_.modify(ipv6_.socket.get(), 0);
}

void TcpNat::collect_garbage(Clock::time_point now) {
    if (are_listeners_paused_) {
        are_listeners_paused_ = false;
        loop_.modify(ipv4_.socket.get(), EPOLLIN);
        loop_.modify(ipv6_.socket.get(), EPOLLIN);
    }
    std::vector<std::uint16_t> expired;
    for (auto& [port, state] : flows_) {
        const auto age = now - state.since;
        if (state.phase == Phase::connecting && age >= connect_timeout) {
            stats_.count(Drop::proxy_refused);
            refuse(state.held_syn, proxy::SocksReply::ttl_expired);
            expired.push_back(port);
        } else if ((state.phase == Phase::closed && age >= closed_linger) ||
                   (state.phase == Phase::injected && age >= unaccepted_timeout)) {
            expired.push_back(port);
        }
    }
    for (const std::uint16_t port : expired) forget(port, now);
}

}  // namespace psi::engine
