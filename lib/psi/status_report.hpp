// psi status: one screen (or one JSON document) on the tunnel, the kill switch and the packet
// engine, from the supervisor's state file, psi-fw status and psi-tun stats.
#pragma once

#include <string>

#include "core/config.hpp"
#include "core/json.hpp"

namespace psi::wrapper {

struct StatusRequest {
    std::string config_path;
    std::string program_directory;  // where psi-fw and psi-tun are
    bool is_json = false;
};

// Exit status: 0 the tunnel is up, 1 it is not, 3 the kill switch is not intact.
int report_status(const Config& config, const StatusRequest& request);

// The tunnel part of the state file ({} when there is none).
const json::Value& tunnel_of(const json::Value& state);

// "tunnel up via OSSH, server region CA; SOCKS5 ..., HTTP ...", and the homepages.
void print_tunnel(const json::Value& tunnel);

}  // namespace psi::wrapper
