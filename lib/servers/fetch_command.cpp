// psi-servers fetch and refresh: the remote list downloaded, verified and stored.
#include <unistd.h>

#include <cstdio>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "servers/command_output.hpp"
#include "servers/commands.hpp"
#include "servers/remote_list.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {
namespace {

RemoteListSettings settings_from(const CommandLine& line, const Config& config, bool is_interactive) {
    RemoteListSettings settings = remote_list_settings(config, line.url);
    settings.proxy = line.proxy;
    settings.resolvers = line.resolvers;
    settings.ca_file = line.ca_file;
    settings.max_bytes = line.max_mebibytes << 20;
    settings.timeout_seconds = line.timeout_seconds;
    settings.is_etag_ignored = line.is_forced;
    settings.show_progress = is_interactive && !line.is_json && ::isatty(STDERR_FILENO);
    return settings;
}

// Fetch as `fetch` (interactive, always asks the server) or `refresh` (cron: rate-limited,
// quiet unless something failed, exit status says updated / unchanged / failed).
int fetch_and_store(const CommandLine& line, const Config& config, bool is_refresh) {
    StoreTransaction transaction(store_path(line.store_path, config));
    Store& store = transaction.store();
    const std::int64_t now = now_seconds();
    if (is_refresh && !line.is_forced && store.remote.last_success > 0 &&
        now - store.remote.last_success < static_cast<std::int64_t>(line.stale_hours * 3600)) {
        log::debug("the remote list was fetched at " + format_time(store.remote.last_success) + "; not yet stale");
        if (line.is_json) print_json(json::Object{{"modified", false}, {"stale", false}});
        return exit_unchanged;
    }
    RemoteListSettings settings = settings_from(line, config, !is_refresh);
    if (line.is_through_tunnel) {
        const auto proxy = line.running_tunnel_proxy(config);
        if (!proxy) {
            log::debug("no tunnel is up: nothing fetched (--through-tunnel)");
            if (line.is_json) print_json(json::Object{{"modified", false}, {"tunnel", false}});
            return exit_unchanged;
        }
        settings.proxy = *proxy;
    }
    const FetchReport report =
        fetch_remote_list(store, settings, config.data_root_directory + "/remote_server_list.part", now);
    if (!report.is_modified) {
        if (!is_refresh && !line.is_json) std::puts("remote server list unchanged since the last fetch");
        if (line.is_json) print_json(json::Object{{"modified", false}, {"stale", true}});
        store.remote.last_success = now;
        transaction.commit();
        return is_refresh ? exit_unchanged : exit_status::ok;
    }
    transaction.commit();
    if (!is_refresh || line.is_json)
        print_import_report(report.imported, "remote list verified; stored", line.is_json);
    else if (report.imported.skipped_count() > 0)
        log::warning("the remote list had " + std::to_string(report.imported.skipped_count()) + " bad lines: " +
                     skipped_text(report.imported.skipped));
    const ImportCounts& counts = report.imported.counts;
    return counts.added + counts.updated > 0 || !is_refresh ? exit_status::ok : exit_unchanged;
}

}  // namespace

int fetch_command(const CommandLine& line, const Config& config) { return fetch_and_store(line, config, false); }

int refresh_command(const CommandLine& line, const Config& config) { return fetch_and_store(line, config, true); }

}  // namespace psi::servers
