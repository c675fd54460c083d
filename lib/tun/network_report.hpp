// psi-tun up and down: the TUN and its network brought up or down, and what was done, for
// people or as JSON.
#pragma once

#include "core/cli.hpp"
#include "core/config.hpp"

namespace psi::tun {

// The config for up, or for down, which a broken config must never lock out: down needs only
// the defaults' paths, and warns.
Config config_for_network_change(const CommonOptions& common, bool is_up);

int report_bring_up(const Config& config, bool is_json);
int report_bring_down(const Config& config, bool is_json);

}  // namespace psi::tun
