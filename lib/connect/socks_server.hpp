// psi-connect's SOCKS5 proxy (RFC 1928, no authentication): CONNECT to IPv4, IPv6 and domain
// names over direct-tcpip channels, and UDP ASSOCIATE over the tunnel's udpgw channel.
#pragma once

#include <memory>
#include <unordered_map>

#include "connect/local_proxy.hpp"
#include "connect/udp_association.hpp"
#include "connect/udpgw_mux.hpp"

namespace psi::connect {

class SocksServer : public LocalProxy {
public:
    // Without `is_udp_enabled` (a server with no udpgw), UDP ASSOCIATE is answered "command not
    // supported", so a client such as psi-tun falls back to DNS over TCP.
    SocksServer(EventLoop& loop, LoopbackListeners listeners, SessionSource session, RelayTotals& totals, bool is_udp_enabled);
    ~SocksServer() override;
    void close_all() override;

private:
    void advance(Client& client) override;
    std::string refusal_reply(const OpenResult& result) const override;
    std::string no_tunnel_reply() const override;
    void start_udp(Client& client);

    bool is_udp_enabled_;
    TunnelSession* udpgw_session_ = nullptr;
    std::unique_ptr<UdpgwMux> udpgw_;
    std::unordered_map<UdpAssociation*, std::unique_ptr<UdpAssociation>> associations_;
};

}  // namespace psi::connect
