#include "engine/udp_relay.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/log.hpp"
#include "packet/packet_builder.hpp"

namespace psi::engine {

using packet::Endpoint;
using packet::IpAddress;
using packet::IpVersion;
using packet::PacketView;
using packet::Unreachable;
using packet::build_udp;
using packet::build_unreachable;

namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_sessions = 1024;
constexpr std::size_t max_queued = 16;          // per session, while associating
constexpr std::size_t max_payload = 65507 - 22;  // what still fits with the SOCKS header
constexpr auto idle_timeout = 60s;
constexpr auto dns_idle_timeout = 15s;
constexpr auto unsupported_retry = 60s;         // then ask the proxy for UDP again
constexpr auto associate_timeout = 10s;
constexpr std::size_t max_reply_payload = 65535 - 20 - 8;  // what an IPv4 datagram can carry

bool is_loopback(const IpAddress& address) {
    if (address.version == IpVersion::v4) return address.bytes[0] == 127;
    for (std::size_t i = 0; i < 15; ++i)
        if (address.bytes[i] != 0) return false;
    return address.bytes[15] == 1;
}

bool is_unspecified(const IpAddress& address) {
    for (std::size_t i = 0; i < (address.version == IpVersion::v4 ? 4u : 16u); ++i)
        if (address.bytes[i] != 0) return false;
    return true;
}

}  // namespace

UdpRelay::UdpRelay(const EngineContext& context)
    : loop_(context.loop),
      settings_(context.settings),
      output_(context.output),
      stats_(context.stats),
      proxy_health_(context.proxy_health),
      icmp_budget_(context.icmp_budget),
      dns_over_tcp_(context) {}

UdpRelay::~UdpRelay() {
    while (!sessions_.empty()) close(sessions_.begin()->first);
}

void UdpRelay::on_packet(std::span<const std::uint8_t> packet, const PacketView& view) {
    const auto destination = proxy_destination(settings_, view.destination);
    if (!destination) {
        stats_.count(Drop::bad_destination);
        if (icmp_budget_.allows(packet, view)) output_.send(build_unreachable(packet, view, Unreachable::port));
        return;
    }
    if (view.payload_length > max_payload) {
        stats_.count(Drop::udp_too_large);
        return;
    }
    const auto payload = packet.subspan(view.total_length - view.payload_length, view.payload_length);
    ++stats_.udp_datagrams_up;
    stats_.udp_bytes_up += payload.size();
    const bool is_udp_usable = settings_.is_udp_enabled && Clock::now() >= udp_unsupported_until_;
    if (!is_udp_usable) {
        if (destination->port == 53) return dns_over_tcp_.query(view.source, view.destination, *destination, payload);
        stats_.count(Drop::udp_unsupported);
        if (icmp_budget_.allows(packet, view)) output_.send(build_unreachable(packet, view, Unreachable::port));
        return;
    }
    Session* session = session_for(view.source);
    if (!session) return;
    session->last_active = Clock::now();
    if (destination->port != 53) session->is_dns_only = false;
    if (*destination != view.destination) session->apparent_source[*destination] = view.destination;
    Datagram datagram{*destination, std::vector<std::uint8_t>(payload.begin(), payload.end())};
    if (session->handshake) {
        if (session->queued.size() < max_queued) session->queued.push_back(std::move(datagram));
        return;
    }
    send(*session, datagram);
}

UdpRelay::Session* UdpRelay::session_for(const Endpoint& application) {
    if (const auto found = sessions_.find(application); found != sessions_.end()) return found->second.get();
    if (sessions_.size() >= max_sessions) {
        stats_.count(Drop::udp_sessions_full);
        auto oldest = sessions_.begin();
        for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
            if (it->second->last_active < oldest->second->last_active) oldest = it;
        close(oldest->first);
    }
    auto session = std::make_unique<Session>();
    // DST.ADDR/PORT 0: the proxy learns our UDP address from the first datagram (RFC 1928 §7).
    const proxy::SocksAddress any{settings_.socks.address.ss_family == AF_INET6 ? proxy::AddressType::ipv6
                                                                                : proxy::AddressType::ipv4,
                                  "", 0};
    session->handshake = std::make_unique<proxy::SocksHandshake>(settings_.socks, proxy::SocksCommand::udp_associate, any);
    session->last_active = session->started = Clock::now();
    Session& ref = *session;
    sessions_[application] = std::move(session);
    ++stats_.udp_sessions_opened;
    if (ref.handshake->step() == proxy::SocksHandshake::Step::failed) {
        proxy_health_.failed(ref.handshake->failure());
        close(application);
        return nullptr;
    }
    loop_.add(ref.handshake->fd(), ref.handshake->wanted_events(), [this, application](std::uint32_t) {
        on_control(application);
    });
    return &ref;
}

void UdpRelay::on_control(const Endpoint& application) {
    const auto found = sessions_.find(application);
    if (found == sessions_.end()) return;
    Session& session = *found->second;
    if (session.handshake) {
        if (!session.handshake->advance()) {
            loop_.modify(session.handshake->fd(), session.handshake->wanted_events());
            return;
        }
        if (!session.handshake->succeeded()) {
            if (session.handshake->has_failed_at_request()) return unsupported(application, session);
            proxy_health_.failed(session.handshake->failure());
            stats_.count(Drop::proxy_refused);
            return close(application);
        }
        proxy_health_.reached();
        return associated(application, session);
    }
    // The proxy writes nothing on the control connection: its end, or any error, ends the association.
    std::array<char, 256> buffer{};
    const ssize_t received = ::recv(session.control.get(), buffer.data(), buffer.size(), 0);
    if (received <= 0 && !(received < 0 && (errno == EAGAIN || errno == EINTR))) close(application);
}

void UdpRelay::associated(const Endpoint& application, Session& session) {
    const proxy::SocksAddress bound = session.handshake->bound();
    session.control = session.handshake->release();
    session.handshake.reset();
    loop_.modify(session.control.get(), EPOLLIN);
    const auto relay_endpoint = endpoint_of(bound);
    // The relay must be the proxy itself or on loopback: a relay elsewhere would carry the
    // applications' datagrams outside the tunnel, with the tunnel user's right to pass.
    if (!relay_endpoint || !is_acceptable_relay(*relay_endpoint)) {
        proxy_health_.failed("the SOCKS proxy named a UDP relay that is neither itself nor on loopback");
        stats_.count(Drop::proxy_refused);
        return close(application);
    }
    // A relay address of 0.0.0.0 or :: means "the proxy's own address".
    Endpoint relay_at = *relay_endpoint;
    if (is_unspecified(relay_at.address)) relay_at.address = endpoint_of_socket(settings_.socks.address)->address;
    socklen_t relay_length = 0;
    const sockaddr_storage relay = socket_address_of(relay_at, relay_length);
    session.socket.reset(::socket(relay.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!session.socket.is_open() || ::connect(session.socket.get(), reinterpret_cast<const sockaddr*>(&relay), relay_length) != 0) {
        log::warning(std::string("cannot reach the proxy's UDP relay: ") + std::strerror(errno));
        return close(application);
    }
    loop_.add(session.socket.get(), EPOLLIN, [this, application](std::uint32_t) { on_datagrams(application); });
    for (const Datagram& datagram : session.queued) send(session, datagram);
    session.queued.clear();
}

void UdpRelay::send(Session& session, const Datagram& datagram) {
    const std::string payload(datagram.payload.begin(), datagram.payload.end());
    const std::string bytes = proxy::encode_udp_datagram({socks_address_of(datagram.destination), payload});
    if (::send(session.socket.get(), bytes.data(), bytes.size(), 0) < 0) stats_.count(Drop::udp_send_failed);
}

void UdpRelay::on_datagrams(const Endpoint& application) {
    const auto found = sessions_.find(application);
    if (found == sessions_.end()) return;
    Session& session = *found->second;
    std::array<char, 65536> buffer{};
    for (int round = 0; round < 64; ++round) {
        const ssize_t received = ::recv(session.socket.get(), buffer.data(), buffer.size(), 0);
        if (received < 0) return;
        const auto datagram = proxy::parse_udp_datagram(std::string_view(buffer.data(), static_cast<std::size_t>(received)));
        if (!datagram) continue;
        auto source = endpoint_of(datagram->destination);
        // Replies come from the far end, never from this machine's TUN networks or anywhere
        // unroutable, whatever the relay says.
        if (!source || proxy_destination(settings_, *source) != source ||
            datagram->payload.size() > max_reply_payload) {
            stats_.count(Drop::bad_reply_source);
            continue;
        }
        // The resolver's answer comes from the DNS address the application asked, which for an
        // IPv6 socket may hide an IPv4 resolver.
        if (const auto apparent = session.apparent_source.find(*source); apparent != session.apparent_source.end())
            source = apparent->second;
        if (source->address.version != application.address.version) continue;
        const auto payload = std::span(reinterpret_cast<const std::uint8_t*>(datagram->payload.data()),
                                       datagram->payload.size());
        output_.send(build_udp(*source, application, payload));
        ++stats_.udp_datagrams_down;
        stats_.udp_bytes_down += payload.size();
        session.last_active = Clock::now();
    }
}

// The proxy refused UDP ASSOCIATE: DNS goes over TCP for a while, other UDP is refused.
void UdpRelay::unsupported(const Endpoint& application, Session& session) {
    log::info(std::string("the SOCKS proxy has no UDP (") + session.handshake->failure() +
              "): DNS goes over TCP, other UDP is refused");
    udp_unsupported_until_ = Clock::now() + unsupported_retry;
    std::deque<Datagram> queued = std::move(session.queued);
    std::map<Endpoint, Endpoint> apparent = std::move(session.apparent_source);
    close(application);
    for (const Datagram& datagram : queued) {
        if (datagram.destination.port != 53) {
            stats_.count(Drop::udp_unsupported);
            continue;
        }
        const auto asked = apparent.find(datagram.destination);
        dns_over_tcp_.query(application, asked != apparent.end() ? asked->second : datagram.destination,
                            datagram.destination, datagram.payload);
    }
}

void UdpRelay::close(const Endpoint& application) {
    const auto found = sessions_.find(application);
    if (found == sessions_.end()) return;
    Session& session = *found->second;
    if (session.handshake && session.handshake->fd() >= 0) loop_.remove(session.handshake->fd());
    if (session.control.is_open()) loop_.remove(session.control.get());
    if (session.socket.is_open()) loop_.remove(session.socket.get());
    sessions_.erase(found);
}

bool UdpRelay::is_acceptable_relay(const Endpoint& relay) const {
    if (is_unspecified(relay.address) || is_loopback(relay.address)) return true;
    const auto proxy = endpoint_of_socket(settings_.socks.address);
    return proxy && proxy->address == relay.address;
}

void UdpRelay::collect_garbage(Clock::time_point now) {
    std::vector<Endpoint> idle;
    for (const auto& [application, session] : sessions_)
        if (now - session->last_active >= (session->is_dns_only ? dns_idle_timeout : idle_timeout) ||
            (session->handshake && now - session->started >= associate_timeout))
            idle.push_back(application);
    for (const Endpoint& application : idle) close(application);
    dns_over_tcp_.collect_garbage(now);
}

}  // namespace psi::engine
