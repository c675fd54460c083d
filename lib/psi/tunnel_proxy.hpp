// The running tunnel's SOCKS proxy, for what must reach the Internet only through the tunnel
// (the refresh timer's download, as the tunnel user, whom the kill switch would let out
// directly): read from the supervisor's state, trusted only as root wrote it, while root's psi
// runs.
#pragma once

#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/json.hpp"

namespace psi::wrapper {

// "socks5h://127.0.0.1:PORT" of a tunnel that is up in `state` (tunnel.up, tunnel.socksPort);
// none otherwise.
std::optional<std::string> tunnel_proxy_in(const json::Value& state);

// The proxy of the tunnel psi has up now; none when psi does not run, the tunnel is down, or the
// state or pid file is not root's alone.
std::optional<std::string> running_tunnel_proxy(const Config& config);

}  // namespace psi::wrapper
