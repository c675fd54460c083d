// psi-servers: the Psiphon server store. Wires the command line to psi::servers and prints.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <fstream>
#include <map>
#include <set>

#include "core/atomic_file.hpp"
#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/output.hpp"
#include "core/privileges.hpp"
#include "psi/tunnel_proxy.hpp"
#include "servers/discovery.hpp"
#include "servers/importer.hpp"
#include "servers/remote_list.hpp"
#include "servers/selection.hpp"
#include "servers/store.hpp"

namespace {

using namespace psi;
using namespace psi::servers;

// Exit status of `refresh` when nothing changed (not modified, or fetched recently).
constexpr int exit_unchanged = 4;

// Entry fields that let anyone use or impersonate the server; `show` hides them by default.
const std::set<std::string> secret_fields = {"sshPassword", "sshObfuscatedKey", "webServerSecret",
                                             "sshShadowsocksKey", "meekObfuscatedKey",
                                             "tacticsRequestObfuscatedKey"};

struct Options {
    CommonOptions common;
    std::string store_path;
    std::string input = "-";
    std::string source = "EMBEDDED";
    bool is_forced = false;
    std::string address;
    bool is_secret_shown = false;
    bool is_any_region = false;
    Selection selection;
    std::uint64_t seed = 0;
    std::string url, proxy, ca_file;
    std::vector<std::string> resolvers;
    bool is_through_tunnel = false;
    std::size_t max_mebibytes = 64;
    long timeout_seconds = 30;
    double stale_hours = 6;
};

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string data_directory(const Config& config) { return config.data_root_directory; }

std::string store_path(const Options& options, const Config& config) {
    return options.store_path.empty() ? data_directory(config) + "/servers" : options.store_path;
}

std::string directory_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// Creates the store's directory if needed, then works as its owner (see become_owner_of).
void enter_store_directory(const std::string& path) {
    const std::string directory = directory_of(path);
    if (::mkdir(directory.c_str(), 0750) != 0 && errno != EEXIST) throw_system_error("cannot create " + directory, errno);
    become_owner_of(directory);
}

Store load_store(const Options& options, const Config& config) {
    const std::string path = store_path(options, config);
    become_owner_of(directory_of(path));
    return Store::load(path);
}

std::string format_time(std::int64_t seconds) {
    if (seconds == 0) return "-";
    std::time_t time = seconds;
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", std::gmtime(&time));
    return text;
}

std::string join(const std::vector<std::string>& items, const char* separator) {
    std::string text;
    for (const auto& item : items) text += (text.empty() ? "" : separator) + item;
    return text;
}

json::Value skipped_json(const std::map<std::string, std::size_t>& skipped) {
    json::Value document = json::Object{};
    for (const auto& [reason, count] : skipped) document.set(reason, static_cast<std::uint64_t>(count));
    return document;
}

std::string skipped_text(const std::map<std::string, std::size_t>& skipped) {
    std::vector<std::string> parts;
    for (const auto& [reason, count] : skipped) parts.push_back(std::to_string(count) + " " + reason);
    return join(parts, ", ");
}

void report_import(const Options& options, const ImportReport& report, const char* verb) {
    const ImportCounts& counts = report.counts;
    const auto& skipped = report.skipped;
    const std::size_t skipped_count = report.skipped_count();
    if (options.common.is_json) {
        json::Value document = json::Object{};
        document.set("modified", true);
        document.set("added", static_cast<std::uint64_t>(counts.added));
        document.set("updated", static_cast<std::uint64_t>(counts.updated));
        document.set("unchanged", static_cast<std::uint64_t>(counts.unchanged));
        document.set("skipped", skipped_json(skipped));
        document.set("refused", skipped_json(report.refused));
        document.set("removedDiscovered", static_cast<std::uint64_t>(report.removed_discovered));
        print_json(document);
        return;
    }
    std::printf("%s %zu entries: %zu added, %zu updated, %zu unchanged\n", verb,
                counts.added + counts.updated + counts.unchanged, counts.added, counts.updated, counts.unchanged);
    if (skipped_count > 0)
        std::printf("skipped %zu bad line%s: %s\n", skipped_count, skipped_count == 1 ? "" : "s",
                    skipped_text(skipped).c_str());
    const std::size_t refused_count = report.refused_count();
    if (refused_count > 0)
        std::printf("refused %zu discovered entr%s: %s\n", refused_count, refused_count == 1 ? "y" : "ies",
                    skipped_text(report.refused).c_str());
    if (report.removed_discovered > 0)
        std::printf("removed %zu discovered entr%s: not global, not seen for %lld days, or beyond %zu\n",
                    report.removed_discovered, report.removed_discovered == 1 ? "y" : "ies",
                    static_cast<long long>(discovered_lifetime_seconds / 86400), max_discovered_stored);
}

int command_import(const Options& options, const Config& config) {
    const auto source = parse_source(options.source);
    if (!source) throw Error("--source must be EMBEDDED, REMOTE, DISCOVERY or TARGET", exit_status::usage);
    std::ifstream file;
    if (options.input != "-") {
        file.open(options.input, std::ios::binary);
        if (!file) throw_system_error("cannot read " + options.input, errno);
    }
    std::istream& input = options.input == "-" ? std::cin : file;
    const std::string path = store_path(options, config);
    enter_store_directory(path);
    StoreLock lock(path, FileLock::Wait::block);
    Store store = Store::load(path);
    const ImportReport report = import_entry_stream(
        store, input,
        ImportOptions{*source, now_seconds(), options.is_forced, entry_signature_key(config)});
    if (report.is_all_skipped()) {
        report_import(options, report, "imported");
        throw Error("no valid entry in the input; the store is unchanged", exit_status::failure);
    }
    store.save(path);
    report_import(options, report, "imported");
    return exit_status::ok;
}

RemoteListSettings settings_from(const Options& options, const Config& config, bool is_interactive) {
    RemoteListSettings settings = remote_list_settings(config, options.url);
    settings.proxy = options.proxy;
    settings.resolvers = options.resolvers;
    settings.ca_file = options.ca_file;
    settings.max_bytes = options.max_mebibytes << 20;
    settings.timeout_seconds = options.timeout_seconds;
    settings.is_etag_ignored = options.is_forced;
    settings.show_progress = is_interactive && !options.common.is_json && ::isatty(STDERR_FILENO);
    return settings;
}

// Fetch as `fetch` (interactive, always asks the server) or `refresh` (cron: rate-limited,
// quiet unless something failed, exit status says updated / unchanged / failed).
int fetch_and_store(const Options& options, const Config& config, bool is_refresh) {
    const std::string path = store_path(options, config);
    enter_store_directory(path);
    StoreLock lock(path, FileLock::Wait::block);
    Store store = Store::load(path);
    const std::int64_t now = now_seconds();
    if (is_refresh && !options.is_forced && store.remote.last_success > 0 &&
        now - store.remote.last_success < static_cast<std::int64_t>(options.stale_hours * 3600)) {
        log::debug("the remote list was fetched at " + format_time(store.remote.last_success) + "; not yet stale");
        if (options.common.is_json) print_json(json::Object{{"modified", false}, {"stale", false}});
        return exit_unchanged;
    }
    RemoteListSettings settings = settings_from(options, config, !is_refresh);
    if (options.is_through_tunnel) {
        const auto proxy = wrapper::running_tunnel_proxy(config);
        if (!proxy) {
            log::debug("no tunnel is up: nothing fetched (--through-tunnel)");
            if (options.common.is_json) print_json(json::Object{{"modified", false}, {"tunnel", false}});
            return exit_unchanged;
        }
        settings.proxy = *proxy;
    }
    const FetchReport report = fetch_remote_list(store, settings,
                                                 data_directory(config) + "/remote_server_list.part", now);
    if (!report.is_modified) {
        if (!is_refresh && !options.common.is_json) std::puts("remote server list unchanged since the last fetch");
        if (options.common.is_json) print_json(json::Object{{"modified", false}, {"stale", true}});
        store.remote.last_success = now;
        store.save(path);
        return is_refresh ? exit_unchanged : exit_status::ok;
    }
    store.save(path);
    if (!is_refresh || options.common.is_json)
        report_import(options, report.imported, "remote list verified; stored");
    else if (report.imported.skipped_count() > 0)
        log::warning("the remote list had " + std::to_string(report.imported.skipped_count()) + " bad lines: " +
                     skipped_text(report.imported.skipped));
    const ImportCounts& counts = report.imported.counts;
    return counts.added + counts.updated > 0 || !is_refresh ? exit_status::ok : exit_unchanged;
}

int command_list(const Options& options, const Config& config) {
    const Store store = load_store(options, config);
    if (options.common.is_json) {
        json::Array items;
        for (const StoredEntry& entry : store.entries()) {
            if (!options.selection.region.empty() && entry.region != options.selection.region) continue;
            json::Array protocols;
            for (const auto& protocol : entry.protocols) protocols.emplace_back(protocol);
            json::Value item = json::Object{};
            item.set("address", entry.ip_address);
            item.set("region", entry.region);
            item.set("protocols", std::move(protocols));
            item.set("apiOverSsh", entry.has_api_requests);
            item.set("configurationVersion", static_cast<std::int64_t>(entry.configuration_version));
            item.set("source", source_name(entry.source));
            item.set("firstSeen", static_cast<std::int64_t>(entry.first_seen));
            item.set("lastSeen", static_cast<std::int64_t>(entry.last_seen));
            item.set("lastConnected", static_cast<std::int64_t>(entry.last_connected));
            item.set("failures", static_cast<std::uint64_t>(entry.failures));
            items.push_back(std::move(item));
        }
        print_json(json::Value(std::move(items)));
        return exit_status::ok;
    }
    std::printf("%-39s %-6s %-18s %-9s %-16s %s\n", "ADDRESS", "REGION", "PROTOCOLS", "SOURCE", "LAST CONNECTED",
                "FAILURES");
    for (const StoredEntry& entry : store.entries()) {
        if (!options.selection.region.empty() && entry.region != options.selection.region) continue;
        std::string protocols = join(entry.protocols, ",");
        if (!entry.has_api_requests) protocols += " (no API)";
        std::printf("%-39s %-6s %-18s %-9s %-16s %u\n", entry.ip_address.c_str(),
                    entry.region.empty() ? "-" : entry.region.c_str(), protocols.c_str(), source_name(entry.source),
                    format_time(entry.last_connected).c_str(), entry.failures);
    }
    return exit_status::ok;
}

const StoredEntry& find_or_fail(const Store& store, const std::string& address) {
    const StoredEntry* entry = store.find(address);
    if (!entry) throw Error("no server " + address + " in the store");
    return *entry;
}

int command_show(const Options& options, const Config& config) {
    const Store store = load_store(options, config);
    json::Value fields = find_or_fail(store, options.address).entry().fields;
    if (!options.is_secret_shown)
        for (auto& [key, value] : fields.as_object())
            if (secret_fields.count(key)) value = "[redacted: --secrets shows it]";
    print_json(fields);
    return exit_status::ok;
}

int command_pick(const Options& options, const Config& config) {
    Selection selection = options.selection;
    for (const std::string& protocol : selection.protocols)
        if (!is_known_protocol(protocol))
            throw Error("--protocol " + protocol + " is not a Psiphon tunnel protocol", exit_status::usage);
    if (selection.region.empty() && !options.is_any_region)
        selection.region = config.psiphon.egress_region;
    if (selection.protocols.empty())
        selection.protocols = config.psiphon.limit_tunnel_protocols;
    if (options.seed != 0) selection.seed = options.seed;

    const Store store = load_store(options, config);
    const auto picked = select_servers(store, selection);
    if (picked.empty())
        throw Error("no stored server matches (region " + (selection.region.empty() ? "any" : selection.region) +
                    ", protocols " + join(selection.protocols.empty() ? default_protocols() : selection.protocols, " ") +
                    ", API over SSH); import or fetch a server list");
    std::string output;
    for (const StoredEntry* entry : picked) output += encode_entry_line(entry->entry_with_local_fields()) + "\n";
    std::fwrite(output.data(), 1, output.size(), stdout);
    return exit_status::ok;
}

int command_regions(const Options& options, const Config& config) {
    const Store store = load_store(options, config);
    std::map<std::string, std::size_t> counts;
    for (const StoredEntry* entry : select_servers(store, Selection{}))
        ++counts[entry->region.empty() ? "-" : entry->region];
    if (options.common.is_json) {
        json::Value document = json::Object{};
        for (const auto& [region, count] : counts) document.set(region, static_cast<std::uint64_t>(count));
        print_json(document);
    } else {
        for (const auto& [region, count] : counts) std::printf("%-6s %zu\n", region.c_str(), count);
    }
    return exit_status::ok;
}

int command_remove(const Options& options, const Config& config) {
    const std::string path = store_path(options, config);
    enter_store_directory(path);
    StoreLock lock(path, FileLock::Wait::block);
    Store store = Store::load(path);
    find_or_fail(store, options.address);
    store.remove(options.address);
    store.save(path);
    if (options.common.is_json) print_json(json::Object{{"removed", options.address}});
    else std::printf("removed %s\n", options.address.c_str());
    return exit_status::ok;
}

int command_export(const Options& options, const Config& config) {
    const Store store = load_store(options, config);
    std::string output;
    for (const StoredEntry& entry : store.entries()) output += encode_entry_line(entry.entry()) + "\n";
    std::fwrite(output.data(), 1, output.size(), stdout);
    return exit_status::ok;
}

void add_fetch_options(CLI::App* command, Options& options) {
    command->add_option("--url", options.url, "Remote server list URL (default: RemoteServerListUrl)");
    command->add_option("--proxy", options.proxy, "Proxy, such as socks5h://127.0.0.1:1081 (through the tunnel)");
    command->add_option("--resolver", options.resolvers,
                        "Resolve the list's host at this DNS server (IP) only, not the system's (the bootstrap)")
        ->excludes("--proxy");
    command->add_option("--ca-file", options.ca_file, "CA certificates to trust instead of the system's")
        ->check(CLI::ExistingFile);
    command->add_option("--max-size", options.max_mebibytes, "Largest list accepted, in MiB")
        ->capture_default_str()
        ->check(CLI::Range(1, 4096));
    command->add_option("--timeout", options.timeout_seconds, "Seconds to connect, and the longest stall")
        ->capture_default_str()
        ->check(CLI::Range(1, 3600));
    command->add_flag("--force", options.is_forced, "Download even if unchanged (and, for refresh, not yet stale)");
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    CLI::App app{"psi-servers: the Psiphon server list of psi: import, verified remote list, store, pick.",
                 "psi-servers"};
    add_common_options(app, options.common);
    app.add_option("--store", options.store_path, "Server store file (default: DataRootDirectory/servers)");
    app.require_subcommand(1);
    app.footer("Examples:\n  psi-servers import server_list.txt\n  psi-servers fetch\n"
               "  psi-servers pick --region CA --count 10 | psi-connect --entries -\n"
               "Exit status: 0 ok, 1 failure (the store is unchanged), 2 usage, 4 refresh: nothing changed.\n"
               "See psi-servers(8).");

    auto* import = app.add_subcommand("import", "Import entry lines from FILE or - (an embedded server list)");
    import->add_option("file", options.input, "File of entry lines, or - for stdin")->capture_default_str();
    import->add_option("--source", options.source, "EMBEDDED, REMOTE, DISCOVERY or TARGET")->capture_default_str();
    import->add_flag("--force", options.is_forced, "Replace stored entries even without a higher configurationVersion");

    auto* fetch = app.add_subcommand("fetch", "Download, verify and store the remote server list");
    add_fetch_options(fetch, options);
    auto* refresh = app.add_subcommand("refresh", "fetch for cron and timers: rate-limited, quiet unless it fails");
    add_fetch_options(refresh, options);
    refresh->add_flag("--through-tunnel", options.is_through_tunnel,
                      "Fetch only through psi's tunnel (its SOCKS proxy); nothing while no tunnel is up")
        ->excludes("--proxy")
        ->excludes("--resolver");
    refresh->add_option("--stale-hours", options.stale_hours, "Fetch only when the last success is older")
        ->capture_default_str();

    auto* list = app.add_subcommand("list", "List the stored servers");
    list->add_option("--region", options.selection.region, "Only this region (ISO 3166 code)");
    auto* show = app.add_subcommand("show", "Show one stored entry as JSON (secrets redacted)");
    show->add_option("address", options.address, "Server IP address")->required();
    show->add_flag("--secrets", options.is_secret_shown, "Also show passwords and keys");

    auto* pick = app.add_subcommand("pick", "Print entry lines to try, affinity first, for psi-connect --entries -");
    pick->add_option("--region", options.selection.region, "Egress region (default: EgressRegion)");
    pick->add_flag("--any-region", options.is_any_region, "Any region, whatever EgressRegion says");
    pick->add_option("--protocol", options.selection.protocols, "OSSH, SSH, ... (default: LimitTunnelProtocols)");
    pick->add_option("--count", options.selection.count, "At most N entries (default: all)");
    pick->add_option("--seed", options.seed, "Fixed shuffle (for tests)");

    auto* regions = app.add_subcommand("regions", "Count the servers pick can choose, per region");
    auto* remove = app.add_subcommand("remove", "Remove a server from the store");
    remove->add_option("address", options.address, "Server IP address")->required();
    auto* export_command = app.add_subcommand("export", "Print every stored entry as lines (psi-servers import reads them)");

    return run_program(app, argc, argv, options.common, [&]() -> int {
        const Config config = load_config_from(options.common);
        if (*import) return command_import(options, config);
        if (*fetch) return fetch_and_store(options, config, false);
        if (*refresh) return fetch_and_store(options, config, true);
        if (*list) return command_list(options, config);
        if (*show) return command_show(options, config);
        if (*pick) return command_pick(options, config);
        if (*regions) return command_regions(options, config);
        if (*remove) return command_remove(options, config);
        if (*export_command) return command_export(options, config);
        return exit_status::usage;
    });
}
