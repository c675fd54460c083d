// psi-servers list: one line per stored server, or a JSON array.
#include <cstdio>

#include "core/error.hpp"
#include "core/output.hpp"
#include "servers/command_output.hpp"
#include "servers/commands.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {
namespace {

// "0", or "2 timeout 2026-12-07 14:05": the failures since it last connected, and the latest.
std::string failures_text(const StoredEntry& entry) {
    if (entry.failures == 0) return "0";
    return std::to_string(entry.failures) + " " + failure_class_name(entry.last_failure) + " " +
           format_time(entry.last_failed);
}

}  // namespace

int list_command(const CommandLine& line, const Config& config) {
    const Store store = read_store(store_path(line.store_path, config));
    const std::string& region = line.selection.region;
    if (line.is_json) {
        json::Array items;
        for (const StoredEntry& entry : store.entries()) {
            if (!region.empty() && entry.region != region) continue;
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
            item.set("lastFailed", static_cast<std::int64_t>(entry.last_failed));
            item.set("lastFailure", failure_class_name(entry.last_failure));
            items.push_back(std::move(item));
        }
        print_json(json::Value(std::move(items)));
        return exit_status::ok;
    }
    std::printf("%-39s %-6s %-18s %-9s %-16s %s\n", "ADDRESS", "REGION", "PROTOCOLS", "SOURCE", "LAST CONNECTED",
                "FAILURES");
    for (const StoredEntry& entry : store.entries()) {
        if (!region.empty() && entry.region != region) continue;
        std::string protocols = join(entry.protocols, ",");
        if (!entry.has_api_requests) protocols += " (no API)";
        std::printf("%-39s %-6s %-18s %-9s %-16s %s\n", entry.ip_address.c_str(),
                    entry.region.empty() ? "-" : entry.region.c_str(), protocols.c_str(), source_name(entry.source),
                    format_time(entry.last_connected).c_str(), failures_text(entry).c_str());
    }
    return exit_status::ok;
}

}  // namespace psi::servers
