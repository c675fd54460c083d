#include "connect/notice.hpp"

#include <ctime>

namespace psi::connect {

std::string format_notice(std::string_view type, const json::Value& data, std::chrono::system_clock::time_point when) {
    const auto milliseconds =
        std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(milliseconds / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char timestamp[80];
    std::snprintf(timestamp, sizeof timestamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(milliseconds % 1000));
    json::Value notice = json::Object{};
    notice.set("data", data);
    notice.set("noticeType", std::string(type));
    notice.set("timestamp", std::string(timestamp));
    return json::canonical_go(notice);
}

void NoticeWriter::emit(std::string_view type, const json::Value& data) {
    std::string line = format_notice(type, data);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), output_);
    std::fflush(output_);
}

}  // namespace psi::connect
