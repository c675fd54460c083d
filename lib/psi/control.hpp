// How the psi commands find and talk to the running supervisor (psi up): its lock, its pid,
// its state file, all in RunDirectory, which is root's. A signal goes through a process
// descriptor to a process whose lock is held and whose program is psi itself.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "core/config.hpp"
#include "core/json.hpp"
#include "core/unique_fd.hpp"

namespace psi::wrapper {

struct RunFiles {
    std::string lock;   // held by the supervisor while it runs
    std::string pid;
    std::string state;  // JSON, replaced atomically by the supervisor
    std::string log;    // the supervisor's and its children's messages
};

RunFiles run_files(const Config& config);

// Creates RunDirectory (root's, 755) when missing; refuses one that another user could change.
void prepare_run_directory(const Config& config);

// The supervisor, when one runs: its pid, pinned by a process descriptor.
struct Supervisor {
    pid_t pid = 0;
    UniqueFd process;
};
std::optional<Supervisor> find_supervisor(const Config& config);

// Sends `signal` to the supervisor; throws psi::Error when it cannot.
void signal_supervisor(const Supervisor& supervisor, int signal);
// Waits until the supervisor has ended; false when `seconds` passed first.
bool wait_for_exit(const Supervisor& supervisor, int seconds);

// The last state the supervisor wrote, or an empty object.
json::Value read_state(const Config& config);
// A string of the state, made printable (the state holds what the tunnel user's notices said),
// or `fallback`.
std::string state_text(const json::Value& object, const char* key, const char* fallback = "");

// The systemd service this process runs in ("psi.service"), or "" when systemd did not start it.
std::string systemd_unit();

}  // namespace psi::wrapper
