// psi logs: the last lines of the supervisor's log, and with `is_follow` every line after them.
#pragma once

#include "core/config.hpp"

namespace psi::wrapper {

int show_log(const Config& config, int lines, bool is_follow);

}  // namespace psi::wrapper
