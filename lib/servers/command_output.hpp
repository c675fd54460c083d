// What more than one psi-servers command prints the same way: times, word lists, the report
// of an import.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "servers/importer.hpp"

namespace psi::servers {

// "2026-11-23 14:05" (UTC, to the minute), or "-" for 0 (never).
std::string format_time(std::int64_t seconds);

std::string join(const std::vector<std::string>& items, const char* separator);

// "3 not hex, 1 truncated": a count per reason.
std::string skipped_text(const std::map<std::string, std::size_t>& skipped);
// {"not hex": 3, "truncated": 1}
json::Value skipped_json(const std::map<std::string, std::size_t>& skipped);
// "VERB 4 NOUNS: 3 not hex, 1 truncated", NOUN when it is one; nothing when there are none.
void print_skipped(const char* verb, const std::map<std::string, std::size_t>& skipped, const char* noun,
                   const char* nouns);

// "VERB N entries: A added, ..." and the lines skipped, refused and removed; or one JSON document.
void print_import_report(const ImportReport& report, const char* verb, bool is_json);

}  // namespace psi::servers
