// One SOCKS5 UDP ASSOCIATE (RFC 1928 §7): a UDP socket on 127.0.0.1 for the client's
// datagrams, alive as long as the client's TCP control connection. Each destination becomes a
// udpgw flow; port 53 is sent with udpgw's DNS flag (the server asks its own resolver). Only the
// first local sender is served, and only IP destinations (udpgw carries addresses, not names),
// except for DNS.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "connect/udpgw_mux.hpp"
#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"
#include "proxy/socks5.hpp"

namespace psi::connect {

class UdpAssociation {
public:
    using FinishedHandler = std::function<void(UdpAssociation*)>;

    // Binds the UDP socket; throws psi::Error when it cannot.
    UdpAssociation(EventLoop& loop, UdpgwMux& udpgw, UniqueFd control, FinishedHandler finished);
    ~UdpAssociation();
    UdpAssociation(const UdpAssociation&) = delete;
    UdpAssociation& operator=(const UdpAssociation&) = delete;

    std::uint16_t port() const { return port_; }

private:
    void on_control(std::uint32_t events);
    void on_datagram();
    void on_reply(const proxy::SocksAddress& source, const proxy::UdpgwMessage& message);
    void finish();

    EventLoop& loop_;
    UdpgwMux& udpgw_;
    UniqueFd control_;
    UniqueFd socket_;
    std::uint16_t port_ = 0;
    FinishedHandler finished_;
    sockaddr_storage client_{};
    socklen_t client_length_ = 0;
    std::map<std::pair<std::string, std::uint16_t>, std::uint16_t> flows_;  // destination -> conid
    bool is_finished_ = false;
};

}  // namespace psi::connect
