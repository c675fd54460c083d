// psi up, down, reload and restart: starting the supervisor (lib/psi/supervisor) in the
// background, signalling it, and waiting for its tunnel. The kill switch is never lowered but
// by `psi down --open`.
#pragma once

#include <string>

#include "core/config.hpp"

namespace psi::wrapper {

struct UpRequest {
    std::string config_path;
    bool is_foreground = false;
    bool is_allow_lan = false;
    std::string mode = "auto";
    int timeout = 60;  // seconds to wait for the tunnel
};

int up(const Config& config, const UpRequest& request);
int down(const Config& config, const std::string& config_path, bool is_open);
int reload(const Config& config, int timeout);
int restart(const Config& config, const std::string& config_path, int timeout);

}  // namespace psi::wrapper
