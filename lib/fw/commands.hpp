// psi-fw's subcommands: each loads what it needs, acts on the kill switch, and prints the
// result for people or, with --json, for scripts.
#pragma once

#include "core/cli.hpp"
#include "fw/kill_switch.hpp"
#include "fw/leak_probe.hpp"

namespace psi::fw {

struct CommandOptions {
    CommonOptions common;
    bool is_allow_lan = false;
    bool is_boot_policy = false;
    ProbeTargets probe_targets;
};

// Each returns the exit status: 0 ok, 3 not secure; throws psi::Error otherwise.
int command_apply(const CommandOptions& options, Mode mode);  // up and boot
int command_down(const CommandOptions& options);
int command_status(const CommandOptions& options);
int command_verify(const CommandOptions& options);
int command_print(const CommandOptions& options);
int command_watch(const CommandOptions& options);

}  // namespace psi::fw
