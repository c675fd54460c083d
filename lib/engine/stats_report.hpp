// psi-tun stats: the running engine's counters, asked for and printed for people or as JSON.
#pragma once

#include "core/config.hpp"

namespace psi::engine {

int report_engine_stats(const Config& config, bool is_json);

}  // namespace psi::engine
