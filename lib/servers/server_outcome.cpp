#include "servers/server_outcome.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "core/error.hpp"

namespace psi::servers {
namespace {

constexpr std::array outcome_fields = {"address", "protocol", "connected", "failure", "time"};

// Longest text form of an IPv6 address (INET6_ADDRSTRLEN without its NUL).
constexpr std::size_t max_address_length = 45;

std::optional<std::string> refusal(const StoredEntry* entry, const ServerOutcome& outcome, std::int64_t now) {
    if (!entry) return "not in the store";
    if (outcome.time <= 0) return "no time";
    if (outcome.time > now + max_outcome_clock_skew_seconds) return "a time in the future";
    if (std::find(entry->protocols.begin(), entry->protocols.end(), outcome.protocol) == entry->protocols.end())
        return "a protocol the server does not serve";
    if (static_cast<std::size_t>(outcome.failure) > static_cast<std::size_t>(FailureClass::dropped))
        return "an unknown failure class";
    if (outcome.is_connected && outcome.failure != FailureClass::none) return "a connection with a failure class";
    if (!outcome.is_connected && outcome.failure == FailureClass::none) return "a failure without a class";
    return std::nullopt;
}

void apply(StoredEntry& entry, const ServerOutcome& outcome) {
    if (outcome.is_connected) {
        entry.last_connected = std::max(entry.last_connected, outcome.time);
        if (outcome.time >= entry.last_failed) entry.failures = 0;
        return;
    }
    if (outcome.time > entry.last_connected && entry.failures < std::numeric_limits<std::uint32_t>::max())
        ++entry.failures;
    if (outcome.time >= entry.last_failed) {
        entry.last_failed = outcome.time;
        entry.last_failure = outcome.failure;
    }
}

// What an IPv4 or IPv6 address is written with; whether it is one, the store decides.
bool is_address_text(const std::string& text) {
    return !text.empty() && text.size() <= max_address_length &&
           text.find_first_not_of("0123456789abcdefABCDEF.:") == std::string::npos;
}

std::int64_t positive_integer_or_zero(const json::Value& value) {
    try {
        return value.is_number() ? std::max<std::int64_t>(value.as_integer(), 0) : 0;
    } catch (const Error&) {
        return 0;  // a fraction, or beyond 64 bits
    }
}

const json::Value* string_field(const json::Value& object, const char* key) {
    const json::Value* value = object.find(key);
    return value && value->is_string() ? value : nullptr;
}

}  // namespace

std::optional<std::string> record_outcome(Store& store, const ServerOutcome& outcome, std::int64_t now) {
    StoredEntry* entry = store.find(outcome.ip_address);
    if (auto why = refusal(entry, outcome, now)) return why;
    apply(*entry, outcome);
    return std::nullopt;
}

json::Value to_json(const ServerOutcome& outcome) {
    json::Value document = json::Object{};
    document.set("address", outcome.ip_address);
    document.set("protocol", outcome.protocol);
    document.set("connected", outcome.is_connected);
    if (!outcome.is_connected) document.set("failure", failure_class_name(outcome.failure));
    document.set("time", outcome.time);
    return document;
}

std::variant<ServerOutcome, std::string> outcome_from_json_line(std::string_view line) {
    if (line.size() > max_outcome_line_bytes) return "longer than " + std::to_string(max_outcome_line_bytes) + " bytes";
    json::Value document;
    try {
        document = json::parse(line, "outcome", 16);
    } catch (const Error&) {
        return std::string("not JSON");
    }
    if (!document.is_object()) return std::string("not a JSON object");
    for (const auto& [key, value] : document.as_object())  // the parser refuses a key twice
        if (std::find(outcome_fields.begin(), outcome_fields.end(), key) == outcome_fields.end())
            return std::string("an unknown field");
    ServerOutcome outcome;
    const json::Value* address = string_field(document, "address");
    if (!address || !is_address_text(address->as_string())) return std::string("no address");
    outcome.ip_address = address->as_string();
    const json::Value* protocol = string_field(document, "protocol");
    if (!protocol || !is_known_protocol(protocol->as_string())) return std::string("an unknown protocol");
    outcome.protocol = protocol->as_string();
    const json::Value* connected = document.find("connected");
    if (!connected || !connected->is_boolean()) return std::string("no connected true or false");
    outcome.is_connected = connected->as_boolean();
    const json::Value* failure = document.find("failure");
    if (outcome.is_connected) {
        if (failure) return std::string("a failure class on a connection");
    } else {
        const auto failure_class = failure && failure->is_string() ? parse_failure_class(failure->as_string()) : std::nullopt;
        if (!failure_class) return std::string("an unknown failure class");
        outcome.failure = *failure_class;
    }
    const json::Value* time = document.find("time");
    outcome.time = time ? positive_integer_or_zero(*time) : 0;
    if (outcome.time == 0) return std::string("no time in Unix seconds");
    return outcome;
}

OutcomeReport record_outcome_lines(Store& store, std::string_view text, std::int64_t now) {
    OutcomeReport report;
    while (!text.empty()) {
        const std::size_t end = std::min(text.find('\n'), text.size());
        const std::string_view line = text.substr(0, end);
        text.remove_prefix(std::min(end + 1, text.size()));
        if (line.empty()) continue;
        auto parsed = outcome_from_json_line(line);
        if (const auto* reason = std::get_if<std::string>(&parsed)) {
            ++report.skipped[*reason];
            continue;
        }
        const ServerOutcome& outcome = std::get<ServerOutcome>(parsed);
        if (const auto why = record_outcome(store, outcome, now)) ++report.refused[*why];
        else ++(outcome.is_connected ? report.connected : report.failed);
    }
    return report;
}

}  // namespace psi::servers
