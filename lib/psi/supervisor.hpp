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

struct SupervisorOptions {
    std::string config_path;
    std::string program_directory;  // where psi-fw, psi-tun, psi-connect and psi-servers are
    bool is_allow_lan = false;
};

// Runs until stopped; returns the exit status (0 stopped cleanly, 1 failed to start).
int run_supervisor(const Config& config, const SupervisorOptions& options);

}  // namespace psi::wrapper
