// psi-connect's run: the options resolved against psi.conf, everything root may read read
// first, then the tunnel user with no capability, then the tunnel controller.
#pragma once

#include "connect/tunnel_controller.hpp"
#include "core/config.hpp"

namespace psi::connect {

// Exit status: 0 stopped by a signal, 1 no tunnel could be kept up; psi::Error on bad input.
int run_connect(ConnectOptions options, const Config& config);

}  // namespace psi::connect
