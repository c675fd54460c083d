#include "psi/control.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/printable.hpp"

namespace psi::wrapper {
namespace {

bool is_lock_held(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.is_open()) return false;
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return false;
    return errno == EWOULDBLOCK;
}

}  // namespace

RunFiles run_files(const Config& config) {
    const std::string directory = config.run_directory;
    return RunFiles{directory + "/psi.lock", directory + "/psi.pid", directory + "/psi.state.json",
                    directory + "/psi.log"};
}

void prepare_run_directory(const Config& config) {
    const std::string& directory = config.run_directory;
    if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) throw_system_error("cannot create " + directory, errno);
    struct stat info {};
    if (::lstat(directory.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
        throw Error(directory + " is not a directory");
    if (info.st_uid != 0 || (info.st_mode & (S_IWGRP | S_IWOTH)))
        throw Error(directory + " must be root's and writable by no one else (RunDirectory)");
}

std::optional<Supervisor> find_supervisor(const Config& config) {
    const RunFiles files = run_files(config);
    if (!is_lock_held(files.lock)) return std::nullopt;
    long pid = 0;
    try {
        pid = std::stol(read_file(files.pid));
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (pid <= 1) return std::nullopt;
    Supervisor supervisor;
    supervisor.pid = static_cast<pid_t>(pid);
    supervisor.process.reset(static_cast<int>(::syscall(SYS_pidfd_open, supervisor.pid, 0)));
    if (!supervisor.process.is_open()) return std::nullopt;
    // Pinned: the check below concerns the process the descriptor refers to. Only root writes
    // the pid file and holds the lock; the name guards against a pid reused since.
    std::string command;
    try {
        command = read_file("/proc/" + std::to_string(supervisor.pid) + "/comm");
    } catch (const Error&) {
        return std::nullopt;
    }
    if (command != "psi\n") return std::nullopt;
    return supervisor;
}

void signal_supervisor(const Supervisor& supervisor, int signal) {
    if (::syscall(SYS_pidfd_send_signal, supervisor.process.get(), signal, nullptr, 0) != 0)
        throw_system_error("cannot signal psi (pid " + std::to_string(supervisor.pid) + ")", errno);
}

bool wait_for_exit(const Supervisor& supervisor, int seconds) {
    pollfd ended{supervisor.process.get(), POLLIN, 0};
    for (;;) {
        const int ready = ::poll(&ended, 1, seconds * 1000);
        if (ready < 0 && errno == EINTR) continue;
        return ready > 0;
    }
}

json::Value read_state(const Config& config) {
    try {
        return json::parse(read_file(run_files(config).state), "psi state");
    } catch (const Error&) {
        return json::Object{};
    }
}

std::string systemd_unit() {
    // systemd gives a service's processes INVOCATION_ID, and the unit is the last part of the
    // cgroup it put them in: "0::/system.slice/psi.service" (the unified hierarchy), or
    // "1:name=systemd:/system.slice/psi.service" where only the older layout has it. No guess:
    // anything else (a scope, a session) is no service to restart.
    if (!std::getenv("INVOCATION_ID")) return "";
    std::string text;
    try {
        text = read_file("/proc/self/cgroup");
    } catch (const Error&) {
        return "";
    }
    std::string unified, named;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(start, end - start);
        start = end + 1;
        if (line.rfind("0::", 0) == 0) unified = line.substr(3);
        else if (const std::size_t at = line.find(":name=systemd:"); at != std::string::npos)
            named = line.substr(at + 14);
    }
    const std::string& path = unified.size() > 1 ? unified : named;
    const std::string unit = path.substr(path.rfind('/') + 1);
    const std::string suffix = ".service";
    const bool is_service =
        unit.size() > suffix.size() && unit.compare(unit.size() - suffix.size(), suffix.size(), suffix) == 0;
    return is_service ? unit : "";
}

std::string state_text(const json::Value& object, const char* key, const char* fallback) {
    const json::Value* value = object.find(key);
    return value && value->is_string() ? printable_text(value->as_string()) : fallback;
}

}  // namespace psi::wrapper
