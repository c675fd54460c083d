#include "connect/notice.hpp"

#include <algorithm>
#include <ctime>
#include <type_traits>
#include <utility>

#include "core/error.hpp"

namespace psi::connect {
namespace {

using namespace notice;

std::optional<std::string> string_member(const json::Value& data, std::string_view key) {
    const json::Value* value = data.find(key);
    if (!value || !value->is_string()) return std::nullopt;
    return value->as_string();
}

std::optional<std::int64_t> integer_member(const json::Value& data, std::string_view key) {
    constexpr std::int64_t missing = -1;  // never written: counts, ports and counters are not negative
    const std::int64_t value = data.get(key, missing);
    if (value == missing) return std::nullopt;
    return value;
}

// One notice type: its name in Psiphon's notices, and its data both ways.
template <typename Type>
struct Format;

// A string literal as a template argument.
template <std::size_t size>
struct Literal {
    char text[size];
    constexpr Literal(const char (&literal)[size]) { std::copy_n(literal, size, text); }
    constexpr std::string_view view() const { return {text, size - 1}; }
};

template <typename>
struct MemberOf;
template <typename Owner, typename Field>
struct MemberOf<Field Owner::*> {
    using Class = Owner;
    using Type = Field;
};

// The notices whose data is one string or one whole number.
template <Literal type_name, Literal key, auto member>
struct OneField {
    using Notice = typename MemberOf<decltype(member)>::Class;
    using Field = typename MemberOf<decltype(member)>::Type;
    static constexpr std::string_view name = type_name.view();
    static json::Value data(const Notice& notice) { return json::Object{{std::string(key.view()), notice.*member}}; }
    static std::optional<Notice> read(const json::Value& data) {
        std::optional<Field> value;
        if constexpr (std::is_same_v<Field, std::string>)
            value = string_member(data, key.view());
        else
            value = integer_member(data, key.view());
        if (!value) return std::nullopt;
        Notice notice{};
        notice.*member = std::move(*value);
        return notice;
    }
};

template <>
struct Format<ListeningSocksProxyPort> : OneField<"ListeningSocksProxyPort", "port", &ListeningSocksProxyPort::port> {};
template <>
struct Format<ListeningHttpProxyPort> : OneField<"ListeningHttpProxyPort", "port", &ListeningHttpProxyPort::port> {};
template <>
struct Format<Tunnels> : OneField<"Tunnels", "count", &Tunnels::count> {};
template <>
struct Format<ActiveTunnel> : OneField<"ActiveTunnel", "protocol", &ActiveTunnel::protocol> {};
template <>
struct Format<ConnectedServerRegion>
    : OneField<"ConnectedServerRegion", "serverRegion", &ConnectedServerRegion::server_region> {};
template <>
struct Format<ClientRegion> : OneField<"ClientRegion", "region", &ClientRegion::region> {};
template <>
struct Format<Homepage> : OneField<"Homepage", "url", &Homepage::url> {};
template <>
struct Format<notice::Warning> : OneField<"Warning", "message", &notice::Warning::message> {};
template <>
struct Format<notice::Error> : OneField<"Error", "message", &notice::Error::message> {};

template <>
struct Format<PacketTunnel> {
    static constexpr std::string_view name = "PacketTunnel";
    static json::Value data(const PacketTunnel& notice) {
        if (notice.state == PacketTunnel::State::refused) return json::Object{{"state", "refused"}};
        return json::Object{{"state", "up"}, {"device", notice.device}};
    }
    static std::optional<PacketTunnel> read(const json::Value& data) {
        const std::optional<std::string> state = string_member(data, "state");
        if (state == "refused") return PacketTunnel{PacketTunnel::State::refused, {}};
        if (state == "up") return PacketTunnel{PacketTunnel::State::up, data.get("device", "")};
        return std::nullopt;
    }
};

constexpr std::pair<const char*, std::int64_t PacketTunnelStats::*> packet_counters[] = {
    {"packetsUp", &PacketTunnelStats::packets_up},       {"packetsDown", &PacketTunnelStats::packets_down},
    {"bytesUp", &PacketTunnelStats::bytes_up},           {"bytesDown", &PacketTunnelStats::bytes_down},
    {"droppedUp", &PacketTunnelStats::dropped_up},       {"refusedDown", &PacketTunnelStats::refused_down},
    {"unwrittenDown", &PacketTunnelStats::unwritten_down},
};

template <>
struct Format<PacketTunnelStats> {
    static constexpr std::string_view name = "PacketTunnelStats";
    static json::Value data(const PacketTunnelStats& notice) { return to_json(notice); }
    static std::optional<PacketTunnelStats> read(const json::Value& data) { return packet_tunnel_stats_from(data); }
};

template <>
struct Format<Exiting> {
    static constexpr std::string_view name = "Exiting";
    static json::Value data(const Exiting&) { return json::Object{}; }
    static std::optional<Exiting> read(const json::Value&) { return Exiting{}; }
};

template <>
struct Format<ServerOutcome> {
    static constexpr std::string_view name = "ServerOutcome";
    static json::Value data(const ServerOutcome& notice) {
        json::Value data = json::Object{
            {"address", notice.address}, {"protocol", notice.protocol}, {"connected", notice.is_connected}};
        if (!notice.is_connected) data.set("failure", notice.failure);
        return data;
    }
    static std::optional<ServerOutcome> read(const json::Value& data) {
        const json::Value* connected = data.find("connected");
        std::optional<std::string> address = string_member(data, "address");
        std::optional<std::string> protocol = string_member(data, "protocol");
        if (!connected || !connected->is_boolean() || !address || !protocol) return std::nullopt;
        ServerOutcome notice{std::move(*address), std::move(*protocol), connected->as_boolean(), {}};
        if (notice.is_connected) return notice;
        std::optional<std::string> failure = string_member(data, "failure");
        if (!failure) return std::nullopt;
        notice.failure = std::move(*failure);
        return notice;
    }
};

std::string utc_timestamp(std::chrono::system_clock::time_point when) {
    const auto milliseconds = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(milliseconds / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char timestamp[80];
    std::snprintf(timestamp, sizeof timestamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(milliseconds % 1000));
    return timestamp;
}

// The alternative of Notice named `type`, read from `data`.
template <std::size_t index = 0>
std::optional<Notice> read_notice(std::string_view type, const json::Value& data) {
    if constexpr (index == std::variant_size_v<Notice>) {
        return std::nullopt;
    } else {
        using Type = std::variant_alternative_t<index, Notice>;
        if (type != Format<Type>::name) return read_notice<index + 1>(type, data);
        if (std::optional<Type> notice = Format<Type>::read(data)) return Notice{std::move(*notice)};
        return std::nullopt;
    }
}

}  // namespace

json::Value to_json(const PacketTunnelStats& stats) {
    json::Value object = json::Object{};
    for (const auto& [key, field] : packet_counters) object.set(key, stats.*field);
    return object;
}

PacketTunnelStats packet_tunnel_stats_from(const json::Value& object) {
    PacketTunnelStats stats;
    for (const auto& [key, field] : packet_counters) stats.*field = object.get(key, std::int64_t{0});
    return stats;
}

std::string format_notice(const Notice& notice, std::chrono::system_clock::time_point when) {
    json::Value line = json::Object{};
    std::visit(
        [&](const auto& alternative) {
            using Type = std::decay_t<decltype(alternative)>;
            line.set("data", Format<Type>::data(alternative));
            line.set("noticeType", std::string(Format<Type>::name));
        },
        notice);
    line.set("timestamp", utc_timestamp(when));
    return json::canonical_go(line);
}

std::optional<Notice> parse_notice(std::string_view line) {
    json::Value document;
    try {
        document = json::parse(line, "notice");
    } catch (const psi::Error&) {
        return std::nullopt;  // not JSON: not a notice
    }
    const json::Value* data = document.find("data");
    const std::optional<std::string> type = string_member(document, "noticeType");
    if (!type || !data || !data->is_object()) return std::nullopt;
    return read_notice(*type, *data);
}

void NoticeWriter::emit(const Notice& notice) {
    std::string line = format_notice(notice);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), output_);
    std::fflush(output_);
}

}  // namespace psi::connect
