// psi-fw watch: keeps the kill switch in place. It listens to the kernel's nftables events and,
// whenever the table is deleted, flushed with the ruleset, or changed by anyone else, loads it
// again at once; a slow periodic check covers events lost to a full socket buffer.
#pragma once

#include "core/config.hpp"
#include "fw/policy.hpp"

namespace psi::fw {

class Watchdog {
public:
    Watchdog(Config config, Mode mode) : config_(std::move(config)), mode_(mode) {}

    // Loads the policy when it is not in place, then watches until SIGTERM or SIGINT (exit 0).
    // Each restoration is logged as one line.
    int run();

private:
    bool restore_if_needed(bool is_first);
    Mode policy_to_keep();

    Config config_;
    Mode mode_;
    unsigned restorations_ = 0;
    bool is_fallback_reported_ = false;
};

}  // namespace psi::fw
