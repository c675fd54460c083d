// psi-tun run and psi-tun stats: starting the packet engine with the least privilege (attach
// to the TUN, then become the tunnel user with no capability at all), its signals, and the
// counters it publishes in RunDirectory/tun-engine for `psi-tun stats`.
#pragma once

#include <string>

#include "core/config.hpp"
#include "core/json.hpp"
#include "engine/engine_context.hpp"

namespace psi::engine {

struct RunOptions {
    std::string socks;         // HOST:PORT; empty: 127.0.0.1 and LocalSocksProxyPort (or 1080)
    std::string dns_resolver;  // empty: TunDnsResolver
    bool is_udp_enabled = true;
    bool is_fast_path_enabled = true;  // the kernel NATs established TCP flows (TcpFastPath)
    bool is_json = false;      // the ready line and SIGUSR1's counters as JSON lines on stdout
};

EngineSettings engine_settings(const Config& config, const RunOptions& options);

// Runs until SIGTERM or SIGINT (exit 0). SIGUSR1 publishes the counters.
int run_engine(const Config& config, const RunOptions& options);

// Asks the running engine for its counters (SIGUSR1) and returns them; throws psi::Error when
// no engine runs or it does not answer.
json::Value request_engine_stats(const Config& config);

}  // namespace psi::engine
