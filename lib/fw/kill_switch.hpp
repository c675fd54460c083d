// The kill switch's operations on the kernel: load, replace, remove, and compare.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "fw/policy.hpp"
#include "fw/table_state.hpp"

namespace psi::fw {

struct KillSwitchStatus {
    bool is_loaded = false;
    std::optional<Mode> mode;              // the expected table the kernel's matches
    std::vector<std::string> differences;  // against the closest expected table
    std::uint64_t rejected_packets = 0;
    bool is_intact() const { return is_loaded && differences.empty(); }
};

enum class Change { applied, unchanged };

class KillSwitch {
public:
    explicit KillSwitch(Config config) : config_(std::move(config)) {}

    // Loads the policy of `mode` in one transaction unless the kernel already holds exactly
    // it, then reads the table back. On any failure the previous table stays.
    Change apply(Mode mode);

    // Removes the table; false when there was none.
    bool remove();

    KillSwitchStatus status() const;

    // The script `apply(mode)` loads.
    std::string script(Mode mode) const;

private:
    Config config_;
};

}  // namespace psi::fw
