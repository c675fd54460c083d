#include "core/log.hpp"

#include <cstdio>
#include <string>

namespace psi::log {
namespace {

std::string program_name = "psi";
Level current_level = Level::info;

void write(Level message_level, std::string_view prefix, std::string_view message) {
    if (message_level > current_level) return;
    std::string line = program_name + ": ";
    line += prefix;
    line += message;
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

void set_program(std::string_view name) { program_name = name; }
void set_level(Level level) { current_level = level; }
Level level() { return current_level; }
bool is_debug() { return current_level >= Level::debug; }

void error(std::string_view message) { write(Level::error, "error: ", message); }
void warning(std::string_view message) { write(Level::warning, "warning: ", message); }
void info(std::string_view message) { write(Level::info, "", message); }
void debug(std::string_view message) { write(Level::debug, "debug: ", message); }

std::string personal(std::string_view value) {
    return is_debug() ? std::string(value) : std::string("[redacted]");
}

}  // namespace psi::log
