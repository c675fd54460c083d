#include "servers/command_output.hpp"

#include <cstdio>
#include <ctime>

#include "core/output.hpp"
#include "servers/discovery.hpp"

namespace psi::servers {

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

std::string skipped_text(const std::map<std::string, std::size_t>& skipped) {
    std::vector<std::string> parts;
    for (const auto& [reason, count] : skipped) parts.push_back(std::to_string(count) + " " + reason);
    return join(parts, ", ");
}

json::Value skipped_json(const std::map<std::string, std::size_t>& skipped) {
    json::Value document = json::Object{};
    for (const auto& [reason, count] : skipped) document.set(reason, static_cast<std::uint64_t>(count));
    return document;
}

void print_skipped(const char* verb, const std::map<std::string, std::size_t>& skipped, const char* noun,
                   const char* nouns) {
    std::size_t count = 0;
    for (const auto& [reason, lines] : skipped) count += lines;
    if (count > 0) std::printf("%s %zu %s: %s\n", verb, count, count == 1 ? noun : nouns, skipped_text(skipped).c_str());
}

void print_import_report(const ImportReport& report, const char* verb, bool is_json) {
    const ImportCounts& counts = report.counts;
    if (is_json) {
        json::Value document = json::Object{};
        document.set("modified", true);
        document.set("added", static_cast<std::uint64_t>(counts.added));
        document.set("updated", static_cast<std::uint64_t>(counts.updated));
        document.set("unchanged", static_cast<std::uint64_t>(counts.unchanged));
        document.set("skipped", skipped_json(report.skipped));
        document.set("refused", skipped_json(report.refused));
        document.set("removedDiscovered", static_cast<std::uint64_t>(report.removed_discovered));
        print_json(document);
        return;
    }
    std::printf("%s %zu entries: %zu added, %zu updated, %zu unchanged\n", verb,
                counts.added + counts.updated + counts.unchanged, counts.added, counts.updated, counts.unchanged);
    print_skipped("skipped", report.skipped, "bad line", "bad lines");
    print_skipped("refused", report.refused, "discovered entry", "discovered entries");
    if (report.removed_discovered > 0)
        std::printf("removed %zu discovered entr%s: not global, not seen for %lld days, or beyond %zu\n",
                    report.removed_discovered, report.removed_discovered == 1 ? "y" : "ies",
                    static_cast<long long>(discovered_lifetime_seconds / 86400), max_discovered_stored);
}

}  // namespace psi::servers
