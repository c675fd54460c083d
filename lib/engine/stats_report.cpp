#include "engine/stats_report.hpp"

#include <cstdio>
#include <initializer_list>
#include <string>

#include "core/error.hpp"
#include "core/json.hpp"
#include "core/output.hpp"
#include "engine/engine_run.hpp"
#include "engine/engine_stats.hpp"

namespace psi::engine {
namespace {

// The counters as a person reads them. The file comes from the tunnel user: only numbers and
// the drop reasons psi knows are shown, whatever else it holds.
const json::Value* member(const json::Value& document, std::initializer_list<const char*> path) {
    const json::Value* value = &document;
    for (const char* key : path) {
        if (value->type() != json::Type::object || !(value = value->find(key))) return nullptr;
    }
    return value;
}

bool is_true(const json::Value& document, std::initializer_list<const char*> path) {
    const json::Value* value = member(document, path);
    return value && value->is_boolean() && value->as_boolean();
}

std::int64_t number(const json::Value& document, std::initializer_list<const char*> path) {
    const json::Value* value = member(document, path);
    if (!value || value->type() != json::Type::number) return 0;
    try {
        return value->as_integer();
    } catch (const Error&) {
        return 0;  // not a whole number
    }
}

std::string megabytes(std::int64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
    return text;
}

void print_stats(const json::Value& document) {
    std::printf("packet engine (pid %lld): %lld TCP flows open (%lld since start), %lld UDP sessions\n",
                static_cast<long long>(number(document, {"pid"})),
                static_cast<long long>(number(document, {"stats", "tcp", "flowsActive"})),
                static_cast<long long>(number(document, {"stats", "tcp", "flowsOpened"})),
                static_cast<long long>(number(document, {"stats", "udp", "sessionsActive"})));
    std::printf("TCP %s up, %s down; UDP %s up, %s down\n",
                megabytes(number(document, {"stats", "tcp", "bytesUp"})).c_str(),
                megabytes(number(document, {"stats", "tcp", "bytesDown"})).c_str(),
                megabytes(number(document, {"stats", "udp", "bytesUp"})).c_str(),
                megabytes(number(document, {"stats", "udp", "bytesDown"})).c_str());
    std::string dropped;
    for (std::size_t i = 0; i < static_cast<std::size_t>(Drop::count_); ++i) {
        const char* reason = drop_name(static_cast<Drop>(i));
        if (const std::int64_t count = number(document, {"stats", "dropped", reason}))
            dropped += " " + std::to_string(count) + " " + reason;
    }
    if (!dropped.empty()) std::printf("not passed on:%s\n", dropped.c_str());
    if (is_true(document, {"stats", "fastPath", "on"}))
        std::printf("kernel fast path: %lld TCP segments NATed in the kernel\n",
                    static_cast<long long>(number(document, {"stats", "fastPath", "packets"})));
}

}  // namespace

int report_engine_stats(const Config& config, bool is_json) {
    const json::Value document = request_engine_stats(config);
    if (is_json) print_json(document);
    else print_stats(document);
    return exit_status::ok;
}

}  // namespace psi::engine
