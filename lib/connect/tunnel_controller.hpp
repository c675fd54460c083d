// psi-connect's controller: keeps one tunnel up. It dials the candidates in waves, backs off
// when none answers, prefers the server that worked, falls back to the proxies only when the
// packet tunnel is refused, follows network changes, and reports all of it as notices.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "connect/dial.hpp"
#include "core/config.hpp"
#include "core/loopback_listener.hpp"
#include "core/unique_fd.hpp"

namespace psi::connect {

struct ConnectOptions {
    std::string entries = "-";
    int socks_port = -1;  // -1: LocalSocksProxyPort, else 1080
    int http_port = -1;   // -1: LocalHttpProxyPort, else 8080
    std::vector<int> socks_fds;  // listening sockets handed down by psi up, instead of the port
    std::vector<int> http_fds;
    bool is_handshake = true;
    std::string identity_file;
    std::string discovered_file;
    std::vector<std::string> protocols;
    int parallel = 4;
    int dial_timeout = 20;
    int keepalive = 0;           // 0: every 60-120 s
    int establish_timeout = -1;  // -1: EstablishTunnelTimeoutSeconds, else 300; 0: forever
    std::string tun_name;        // the packet tunnel into this TUN; empty: proxies only
};

class TunnelController {
public:
    // `tun`: attached for the packet tunnel, or not open.
    TunnelController(const ConnectOptions& options, const Config& config, std::vector<Candidate> candidates,
                     UniqueFd tun, LoopbackListeners socks, LoopbackListeners http);
    ~TunnelController();
    TunnelController(const TunnelController&) = delete;
    TunnelController& operator=(const TunnelController&) = delete;

    // Until a signal arrives on `signal_fd` (exit 0) or no tunnel can be kept up (exit 1).
    int run(int signal_fd);

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace psi::connect
