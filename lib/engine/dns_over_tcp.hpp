// DNS queries that cannot go as UDP (the SOCKS proxy has no UDP ASSOCIATE, like OpenSSH's
// ssh -D) go over TCP instead (RFC 7766): one persistent, pipelined SOCKS connection per
// resolver, each query under an ID of its own so that answers find their application even
// when two applications chose the same ID.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>

#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"
#include "engine/engine_context.hpp"
#include "engine/engine_stats.hpp"
#include "proxy/socks5_client.hpp"

namespace psi::engine {

class DnsOverTcp {
public:
    explicit DnsOverTcp(const EngineContext& context);
    ~DnsOverTcp();

    // `message` as the application sent it to `apparent`; asked of `server`, answered from `apparent`.
    void query(const packet::Endpoint& application, const packet::Endpoint& apparent, const packet::Endpoint& server,
               std::span<const std::uint8_t> message);
    void collect_garbage(Clock::time_point now);

private:
    struct Pending {
        packet::Endpoint application, apparent;
        std::uint16_t original_id = 0;
        Clock::time_point sent;
    };
    struct Connection {
        std::unique_ptr<proxy::SocksHandshake> handshake;  // until the proxy has connected
        UniqueFd socket;
        std::string outgoing, incoming;
        std::unordered_map<std::uint16_t, Pending> pending;  // by the ID on the wire
        std::uint16_t next_id = 1;
        Clock::time_point last_active;
    };

    Connection& connection_to(const packet::Endpoint& server);
    void on_event(const packet::Endpoint& server);
    bool flush(Connection& connection);
    bool read_answers(Connection& connection);
    void pass_on_answers(Connection& connection);
    void watch(const packet::Endpoint& server, Connection& connection);
    void close(const packet::Endpoint& server);

    EventLoop& loop_;
    const EngineSettings& settings_;
    PacketOutput& output_;
    EngineStats& stats_;
    ProxyHealth& proxy_health_;
    std::map<packet::Endpoint, std::unique_ptr<Connection>> connections_;
};

}  // namespace psi::engine
