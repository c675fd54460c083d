// What every psi program's command line shares: --config, --json, --verbose, --version, and
// the one place where errors become a one-line message and an exit status.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "core/config.hpp"

namespace psi {

struct CommonOptions {
    std::string config_path = default_config_path;
    bool is_json = false;
    bool is_verbose = false;
};

void add_common_options(CLI::App& app, CommonOptions& options);

// Parses the command line and runs `body`; --help and --version exit 0, command-line errors
// exit 2, a psi::Error prints "program: error: message" and exits with its status.
int run_program(CLI::App& app, int argc, char** argv, const CommonOptions& options,
                const std::function<int()>& body);

// Loads the config named by the options and prints its warnings.
Config load_config_from(const CommonOptions& options);

}  // namespace psi
