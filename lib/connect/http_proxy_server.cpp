#include "connect/http_proxy_server.hpp"

#include "proxy/http_proxy.hpp"

namespace psi::connect {

void HttpProxyServer::advance(Client& client) {
    const proxy::ParsedHttpHead head = proxy::parse_http_proxy_head(client.received);
    if (head.status == proxy::ParseStatus::need_more) return;
    if (head.status == proxy::ParseStatus::malformed) {
        refuse(client.socket.get(), proxy::http_proxy_response(head.error_status));
        return;
    }
    client.received.erase(0, head.consumed);
    const proxy::HttpProxyRequest& request = head.request;
    if (request.is_connect) {
        start_connect(client, request.host, request.port, proxy::http_proxy_response(200));
    } else {
        start_connect(client, request.host, request.port, std::string(), request.upstream_head);
    }
}

std::string HttpProxyServer::refusal_reply(const OpenResult& result) const {
    switch (result.reply) {
        case proxy::SocksReply::not_allowed: return proxy::http_proxy_response(403);
        case proxy::SocksReply::ttl_expired: return proxy::http_proxy_response(504);
        default: return proxy::http_proxy_response(502);
    }
}

std::string HttpProxyServer::no_tunnel_reply() const { return proxy::http_proxy_response(503); }

}  // namespace psi::connect
