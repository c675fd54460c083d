// Logging for people, on stderr. Messages never carry personal data (destination hosts,
// client addresses) unless the user asked for debug output: pass such values through
// `log::personal()`, which shows them only at debug level.
#pragma once

#include <string>
#include <string_view>

namespace psi::log {

enum class Level { error = 0, warning = 1, info = 2, debug = 3 };

void set_program(std::string_view name);
void set_level(Level level);
Level level();
bool is_debug();

void error(std::string_view message);
void warning(std::string_view message);
void info(std::string_view message);
void debug(std::string_view message);

// The value itself at debug level, "[redacted]" otherwise.
std::string personal(std::string_view value);

}  // namespace psi::log
