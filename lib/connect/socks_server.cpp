#include "connect/socks_server.hpp"

#include "core/error.hpp"
#include "core/log.hpp"
#include "proxy/socks5.hpp"

namespace psi::connect {
namespace {

// A greeting (2 + 255 methods) and a request with the longest name (7 + 255) fit in this.
constexpr std::size_t max_socks_bytes = 600;

}  // namespace

SocksServer::SocksServer(EventLoop& loop, LoopbackListeners listeners, SessionSource session, RelayTotals& totals,
                         bool is_udp_enabled)
    : LocalProxy(loop, std::move(listeners), std::move(session), totals), is_udp_enabled_(is_udp_enabled) {}

SocksServer::~SocksServer() {
    associations_.clear();
    udpgw_.reset();
}

std::string SocksServer::refusal_reply(const OpenResult& result) const { return proxy::request_reply(result.reply); }

std::string SocksServer::no_tunnel_reply() const { return proxy::request_reply(proxy::SocksReply::network_unreachable); }

void SocksServer::advance(Client& client) {
    const int fd = client.socket.get();
    if (!client.is_greeted) {
        const auto greeting = proxy::parse_greeting(client.received);
        if (greeting.status == proxy::ParseStatus::need_more) {
            if (client.received.size() > max_socks_bytes) drop(fd);
            return;
        }
        if (greeting.status == proxy::ParseStatus::malformed || !greeting.message.offers_no_authentication) {
            refuse(fd, proxy::greeting_reply(false));
            return;
        }
        send_now(fd, proxy::greeting_reply(true));
        client.received.erase(0, greeting.consumed);
        client.is_greeted = true;
    }
    const auto request = proxy::parse_request(client.received);
    if (request.status == proxy::ParseStatus::need_more) {
        if (client.received.size() > max_socks_bytes) refuse(fd, proxy::request_reply(proxy::SocksReply::general_failure));
        return;
    }
    if (request.status == proxy::ParseStatus::malformed) {
        refuse(fd, proxy::request_reply(request.error));
        return;
    }
    client.received.erase(0, request.consumed);
    switch (request.message.command) {
        case proxy::SocksCommand::connect:
            start_connect(client, request.message.destination.host, request.message.destination.port,
                          proxy::request_reply(proxy::SocksReply::succeeded));
            return;
        case proxy::SocksCommand::udp_associate:
            if (is_udp_enabled_) {
                start_udp(client);
                return;
            }
            break;
        case proxy::SocksCommand::bind:
            break;
    }
    refuse(fd, proxy::request_reply(proxy::SocksReply::command_not_supported));
}

void SocksServer::start_udp(Client& client) {
    const int fd = client.socket.get();
    TunnelSession* session = session_();
    if (!session) {
        refuse(fd, no_tunnel_reply());
        return;
    }
    if (!udpgw_ || udpgw_session_ != session) {
        udpgw_ = std::make_unique<UdpgwMux>(loop_, *session);
        udpgw_session_ = session;
    }
    std::unique_ptr<UdpAssociation> association;
    try {
        association = std::make_unique<UdpAssociation>(loop_, *udpgw_, release(fd), [this](UdpAssociation* done) {
            loop_.defer([this, done] { associations_.erase(done); });
        });
    } catch (const Error& error) {
        log::warning(error.what());
        return;  // the control connection went with the failed association: the client sees it close
    }
    const proxy::SocksAddress bound{proxy::AddressType::ipv4, "127.0.0.1", association->port()};
    send_now(fd, proxy::request_reply(proxy::SocksReply::succeeded, bound));
    UdpAssociation* key = association.get();
    associations_.emplace(key, std::move(association));
}

void SocksServer::close_all() {
    LocalProxy::close_all();
    associations_.clear();
    udpgw_.reset();
    udpgw_session_ = nullptr;
}

}  // namespace psi::connect
