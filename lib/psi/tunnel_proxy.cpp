#include "psi/tunnel_proxy.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "psi/control.hpp"

namespace psi::wrapper {
namespace {

constexpr std::size_t max_state_bytes = 1 << 20;

// The file's content when root owns it and no one else may write it; none otherwise.
std::optional<std::string> read_roots_file(const std::string& path) {
    UniqueFd file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat info {};
    if (!file.is_open() || ::fstat(file.get(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_uid != 0 ||
        (info.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return std::nullopt;
    try {
        return read_all(file.get(), path, max_state_bytes);
    } catch (const Error&) {
        return std::nullopt;
    }
}

// The pid file names a live process of root's running psi.
bool is_supervisor_running(const std::string& pid_file) {
    const auto text = read_roots_file(pid_file);
    if (!text) return false;
    long pid = 0;
    try {
        pid = std::stol(*text);
    } catch (const std::exception&) {
        return false;
    }
    if (pid <= 1) return false;
    const std::string process = "/proc/" + std::to_string(pid);
    struct stat info {};
    const auto command = read_roots_file(process + "/comm");
    return ::stat(process.c_str(), &info) == 0 && info.st_uid == 0 && command && *command == "psi\n";
}

}  // namespace

std::optional<std::string> tunnel_proxy_in(const json::Value& state) {
    const json::Value* tunnel = state.is_object() ? state.find("tunnel") : nullptr;
    const json::Value* running = state.is_object() ? state.find("running") : nullptr;
    if (!tunnel || !tunnel->is_object() || !running || !running->is_boolean() || !running->as_boolean()) return std::nullopt;
    const json::Value* up = tunnel->find("up");
    const json::Value* port = tunnel->find("socksPort");
    if (!up || !up->is_boolean() || !up->as_boolean() || !port || !port->is_number()) return std::nullopt;
    const std::int64_t number = port->as_integer();
    if (number < 1 || number > 65535) return std::nullopt;
    return "socks5h://127.0.0.1:" + std::to_string(number);
}

std::optional<std::string> running_tunnel_proxy(const Config& config) {
    const RunFiles files = run_files(config);
    if (!is_supervisor_running(files.pid)) return std::nullopt;
    const auto text = read_roots_file(files.state);
    if (!text) return std::nullopt;
    try {
        return tunnel_proxy_in(json::parse(*text, files.state));
    } catch (const Error&) {
        return std::nullopt;
    }
}

}  // namespace psi::wrapper
