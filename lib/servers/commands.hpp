// psi-servers' commands, one function each in a file named after it (import_command.cpp, ...):
// what the command does with the store and what it prints. cmd/psi-servers/main.cpp fills a
// CommandLine from the command line and calls one of them; each returns the exit status.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "servers/selection.hpp"

namespace psi::servers {

// Exit status of `refresh` when nothing changed (not modified, or fetched recently).
inline constexpr int exit_unchanged = 4;

struct CommandLine {
    std::string store_path;  // "" = DataRootDirectory/servers
    bool is_json = false;
    std::string input = "-";  // import, record
    std::string source = "EMBEDDED";
    bool is_forced = false;   // import: replace entries; fetch, refresh: download even if unchanged
    std::string address;      // show, remove
    bool is_secret_shown = false;
    Selection selection;      // pick; list takes only its region
    bool is_any_region = false;
    std::uint64_t seed = 0;
    std::string url, proxy, ca_file;  // fetch, refresh
    std::vector<std::string> resolvers;
    std::size_t max_mebibytes = 64;
    long timeout_seconds = 30;
    bool is_through_tunnel = false;  // refresh
    double stale_hours = 6;
    // For --through-tunnel: the SOCKS proxy of the tunnel psi has up, none while none is. It
    // is psi's to know (psi/tunnel_proxy.hpp), so the program hands it in.
    std::function<std::optional<std::string>(const Config&)> running_tunnel_proxy;
};

using Command = int (*)(const CommandLine& line, const Config& config);

int import_command(const CommandLine& line, const Config& config);
int fetch_command(const CommandLine& line, const Config& config);
int refresh_command(const CommandLine& line, const Config& config);
int list_command(const CommandLine& line, const Config& config);
int show_command(const CommandLine& line, const Config& config);
int pick_command(const CommandLine& line, const Config& config);
int regions_command(const CommandLine& line, const Config& config);
int remove_command(const CommandLine& line, const Config& config);
int export_command(const CommandLine& line, const Config& config);
int record_command(const CommandLine& line, const Config& config);

}  // namespace psi::servers
