// psi up's supervisor: brings the kill switch and the TUN up, then runs psi-fw watch (the kill
// switch put back whenever anything else removes it), psi-connect (fed by psi-servers pick) and
// psi-tun run, restarts any of them that dies (with backoff), follows
// psi-connect's notices, and publishes the state for psi status. SIGHUP restarts psi-connect
// only (psi reload); SIGTERM or SIGINT stop the tunnel and the TUN, never the kill switch. No
// error path lowers the kill switch.
#pragma once

#include <string>

#include "core/config.hpp"

namespace psi::wrapper {

// How the TUN's traffic reaches the tunnel: Psiphon's packet tunnel in psi-connect, or psi-tun
// run into psi-connect's SOCKS proxy; auto takes the packet tunnel where the server offers it.
enum class TunnelMode { automatic, packet, socks };
TunnelMode parse_tunnel_mode(const std::string& text);  // throws psi::Error (usage) for anything else
const char* tunnel_mode_name(TunnelMode mode);

struct SupervisorOptions {
    std::string config_path;
    std::string program_directory;  // where psi-fw, psi-tun, psi-connect and psi-servers are
    bool is_allow_lan = false;
    TunnelMode mode = TunnelMode::automatic;
};

// Another supervisor runs: psi.service's RestartPreventExitStatus, so that systemd does not
// try again and again while psi runs outside it.
inline constexpr int already_up_exit_status = 4;

// Runs until stopped; returns the exit status (0 stopped cleanly, 1 failed to start); throws
// psi::Error with already_up_exit_status when another supervisor runs.
int run_supervisor(const Config& config, const SupervisorOptions& options);

}  // namespace psi::wrapper
