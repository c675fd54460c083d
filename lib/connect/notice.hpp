// psi-connect's notices: one JSON object per line on stdout, in the format of Psiphon's own
// console client (PROTOCOL.md §7), so scripts written for Psiphon keep working:
//   {"data":{...},"noticeType":"Tunnels","timestamp":"2006-01-02T15:04:05.000Z"}
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "core/json.hpp"

namespace psi::connect {

// Keys in Go's sorted order and Go's escaping (encoding/json), UTC with milliseconds.
std::string format_notice(std::string_view type, const json::Value& data,
                          std::chrono::system_clock::time_point when = std::chrono::system_clock::now());

// Writes notices, one flushed line each, so a reader of the pipe sees them at once.
class NoticeWriter {
public:
    explicit NoticeWriter(std::FILE* output = stdout) : output_(output) {}
    void emit(std::string_view type, const json::Value& data = json::Object{});

private:
    std::FILE* output_;
};

}  // namespace psi::connect
