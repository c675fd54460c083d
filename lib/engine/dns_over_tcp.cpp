#include "engine/dns_over_tcp.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "core/byte_reader.hpp"
#include "core/log.hpp"
#include "packet/packet_builder.hpp"

namespace psi::engine {

using packet::Endpoint;
using packet::build_udp;

namespace {

using namespace std::chrono_literals;

constexpr std::size_t dns_header_size = 12;
constexpr std::size_t max_outgoing = 64 * 1024;  // queries waiting for the connection
constexpr std::size_t max_incoming = 2 * (65535 + 2);
constexpr auto query_timeout = 10s;
constexpr auto idle_timeout = 30s;
constexpr std::size_t max_servers = 16;  // resolvers asked over TCP at once

}  // namespace

DnsOverTcp::DnsOverTcp(const EngineContext& context)
    : loop_(context.loop),
      settings_(context.settings),
      output_(context.output),
      stats_(context.stats),
      proxy_health_(context.proxy_health) {}

DnsOverTcp::~DnsOverTcp() {
    while (!connections_.empty()) close(connections_.begin()->first);
}

void DnsOverTcp::query(const Endpoint& application, const Endpoint& apparent, const Endpoint& server,
                       std::span<const std::uint8_t> message) {
    if (message.size() < dns_header_size || message.size() > 65535) return;
    if (!connections_.count(server) && connections_.size() >= max_servers) {
        stats_.count(Drop::too_many_pending);
        return;
    }
    Connection& connection = connection_to(server);
    if (connection.outgoing.size() + message.size() + 2 > max_outgoing || connection.pending.size() >= 65535) {
        stats_.count(Drop::too_many_pending);
        return;
    }
    ByteReader query(message);
    const std::uint16_t original_id = query.u16();
    const std::string_view after_id = query.take_rest_text();
    std::uint16_t id = connection.next_id;
    while (connection.pending.count(id)) ++id;
    connection.next_id = static_cast<std::uint16_t>(id + 1);
    connection.pending[id] = Pending{application, apparent, original_id, Clock::now()};
    connection.outgoing += static_cast<char>(message.size() >> 8);
    connection.outgoing += static_cast<char>(message.size() & 0xff);
    connection.outgoing += static_cast<char>(id >> 8);
    connection.outgoing += static_cast<char>(id & 0xff);
    connection.outgoing.append(after_id);
    connection.last_active = Clock::now();
    ++stats_.dns_queries_over_tcp;
    if (!connection.handshake && !flush(connection)) return close(server);
    watch(server, connection);
}

DnsOverTcp::Connection& DnsOverTcp::connection_to(const Endpoint& server) {
    auto& slot = connections_[server];
    if (slot) return *slot;
    slot = std::make_unique<Connection>();
    slot->handshake =
        std::make_unique<proxy::SocksHandshake>(settings_.socks, proxy::SocksCommand::connect, socks_address_of(server));
    slot->last_active = Clock::now();
    const int fd = slot->handshake->fd();
    if (fd >= 0) loop_.add(fd, slot->handshake->wanted_events(), [this, server](std::uint32_t) { on_event(server); });
    return *slot;
}

void DnsOverTcp::watch(const Endpoint& server, Connection& connection) {
    if (connection.handshake) {
        if (connection.handshake->step() == proxy::SocksHandshake::Step::failed) return close(server);
        loop_.modify(connection.handshake->fd(), connection.handshake->wanted_events());
        return;
    }
    loop_.modify(connection.socket.get(), EPOLLIN | (connection.outgoing.empty() ? 0u : EPOLLOUT));
}

void DnsOverTcp::on_event(const Endpoint& server) {
    const auto found = connections_.find(server);
    if (found == connections_.end()) return;
    Connection& connection = *found->second;
    if (connection.handshake) {
        if (!connection.handshake->advance()) return watch(server, connection);
        if (!connection.handshake->succeeded()) {
            if (connection.handshake->has_failed_at_request()) log::debug("DNS over TCP: " + connection.handshake->failure());
            else proxy_health_.failed(connection.handshake->failure());
            return close(server);
        }
        proxy_health_.reached();
        connection.socket = connection.handshake->release();
        connection.handshake.reset();
    }
    if (!flush(connection) || !read_answers(connection)) return close(server);
    watch(server, connection);
}

bool DnsOverTcp::flush(Connection& connection) {
    while (!connection.outgoing.empty()) {
        const ssize_t sent =
            ::send(connection.socket.get(), connection.outgoing.data(), connection.outgoing.size(), MSG_NOSIGNAL);
        if (sent < 0) return errno == EAGAIN || errno == EINTR;
        connection.outgoing.erase(0, static_cast<std::size_t>(sent));
    }
    return true;
}

// Answers are passed on as they complete, also those that came just before the server closed.
bool DnsOverTcp::read_answers(Connection& connection) {
    std::array<char, 16384> buffer{};
    for (;;) {
        const ssize_t received = ::recv(connection.socket.get(), buffer.data(), buffer.size(), 0);
        if (received < 0 && (errno == EAGAIN || errno == EINTR)) return true;
        if (received <= 0) return false;
        connection.incoming.append(buffer.data(), static_cast<std::size_t>(received));
        pass_on_answers(connection);
        if (connection.incoming.size() > max_incoming) return false;
    }
}

void DnsOverTcp::pass_on_answers(Connection& connection) {
    for (;;) {
        ByteReader frame(connection.incoming);
        const std::size_t length = frame.u16();
        std::string message(frame.take_text(length));
        if (frame.is_short()) break;
        connection.incoming.erase(0, frame.consumed());
        if (message.size() < dns_header_size) continue;
        const auto bytes = std::span(reinterpret_cast<std::uint8_t*>(message.data()), message.size());
        const auto found = connection.pending.find(ByteReader(bytes).u16());
        if (found == connection.pending.end()) continue;
        const Pending pending = found->second;
        connection.pending.erase(found);
        bytes[0] = static_cast<std::uint8_t>(pending.original_id >> 8);
        bytes[1] = static_cast<std::uint8_t>(pending.original_id & 0xff);
        if (message.size() > 65507) continue;
        output_.send(build_udp(pending.apparent, pending.application, bytes));
        ++stats_.udp_datagrams_down;
        stats_.udp_bytes_down += message.size();
        connection.last_active = Clock::now();
    }
}

void DnsOverTcp::close(const Endpoint& server) {
    const auto found = connections_.find(server);
    if (found == connections_.end()) return;
    Connection& connection = *found->second;
    if (connection.handshake && connection.handshake->fd() >= 0) loop_.remove(connection.handshake->fd());
    if (connection.socket.is_open()) loop_.remove(connection.socket.get());
    connections_.erase(found);
}

void DnsOverTcp::collect_garbage(Clock::time_point now) {
    std::vector<Endpoint> idle;
    for (auto& [server, connection] : connections_) {
        // A query unanswered this long: the connection is stuck (or never came up); start anew.
        const bool is_stuck = std::any_of(connection->pending.begin(), connection->pending.end(),
                                          [&](const auto& entry) { return now - entry.second.sent >= query_timeout; });
        if (is_stuck || (connection->pending.empty() && now - connection->last_active >= idle_timeout))
            idle.push_back(server);
    }
    for (const Endpoint& server : idle) close(server);
}

}  // namespace psi::engine
