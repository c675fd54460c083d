// psi-connect's HTTP proxy: CONNECT host:port (any TCP, usually TLS), and absolute-URI requests
// ("GET http://host/path"), sent upstream in origin form with "Connection: close", one request
// per connection.
#pragma once

#include "connect/local_proxy.hpp"

namespace psi::connect {

class HttpProxyServer : public LocalProxy {
public:
    using LocalProxy::LocalProxy;

private:
    void advance(Client& client) override;
    std::string refusal_reply(const OpenResult& result) const override;
    std::string no_tunnel_reply() const override;
};

}  // namespace psi::connect
