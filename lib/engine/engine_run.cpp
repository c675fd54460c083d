#include "engine/engine_run.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/event_loop.hpp"
#include "core/log.hpp"
#include "core/privileges.hpp"
#include "core/signals.hpp"
#include "engine/engine.hpp"
#include "packet/ip_address.hpp"
#include "tun/address_plan.hpp"
#include "tun/tun_device.hpp"

namespace psi::engine {

using packet::parse_ip_address;
using tun::TunFraming;
using tun::attach_tun;
using tun::attach_users_tun;

namespace {

using namespace std::chrono_literals;

constexpr rlim_t wanted_open_files = 65536;  // six per TCP flow: two sockets, two pipes
constexpr std::size_t max_stats_size = 64 * 1024;

std::string engine_directory(const Config& config) { return config.run_directory + "/tun-engine"; }
std::string pid_path(const Config& config) { return engine_directory(config) + "/engine.pid"; }
std::string stats_path(const Config& config) { return engine_directory(config) + "/stats.json"; }

// RunDirectory/tun-engine, owned by the tunnel user, made while still root. An existing one
// must be a real directory of the tunnel user's, never a link somewhere else.
void prepare_engine_directory(const Config& config, const UserIdentity& user) {
    if (::mkdir(config.run_directory.c_str(), 0755) != 0 && errno != EEXIST)
        throw_system_error("cannot create " + config.run_directory, errno);
    const std::string directory = engine_directory(config);
    if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) throw_system_error("cannot create " + directory, errno);
    struct stat info {};
    if (::lstat(directory.c_str(), &info) != 0) throw_system_error("cannot inspect " + directory, errno);
    if (!S_ISDIR(info.st_mode)) throw Error(directory + " is not a directory; remove it");
    if (info.st_uid != user.uid && ::chown(directory.c_str(), user.uid, user.gid) != 0)
        throw_system_error("cannot give " + directory + " to " + user.name, errno);
}

bool owns_engine_directory(const Config& config) {
    struct stat info {};
    return ::lstat(engine_directory(config).c_str(), &info) == 0 && S_ISDIR(info.st_mode) && info.st_uid == ::geteuid();
}

// Reads a small file of the tunnel user's without following a link it may have put there.
std::string read_engine_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd.is_open()) throw_system_error("cannot read " + path, errno);
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode)) throw Error(path + " is not a regular file");
    return read_all(fd.get(), path, max_stats_size);
}

class StatsPublisher {
public:
    StatsPublisher(const Config& config, const RunOptions& options, Engine& engine)
        : config_(config), options_(options), engine_(engine), is_file_usable_(owns_engine_directory(config)) {
        if (is_file_usable_) write_file_atomically(pid_path(config_), std::to_string(::getpid()) + "\n", 0644);
    }
    ~StatsPublisher() {
        if (is_file_usable_) ::unlink(pid_path(config_).c_str());
    }

    void publish() {
        json::Value document = json::Object{{"pid", static_cast<std::int64_t>(::getpid())},
                                            {"generation", ++generation_},
                                            {"stats", engine_.stats().to_json()}};
        if (options_.is_json) {
            std::string line = json::Value(json::Object{{"event", "stats"}, {"stats", engine_.stats().to_json()}}).dump() + "\n";
            std::fwrite(line.data(), 1, line.size(), stdout);
            std::fflush(stdout);
        }
        if (!is_file_usable_) return;
        try {
            write_file_atomically(stats_path(config_), document.dump_pretty() + "\n", 0644);
        } catch (const Error& error) {
            log::warning(error.what());
        }
    }

private:
    const Config& config_;
    const RunOptions& options_;
    Engine& engine_;
    bool is_file_usable_;
    std::uint64_t generation_ = 0;
};

// The counters on file, or nothing while there are none (not written yet, or being replaced).
std::optional<json::Value> published_counters(const Config& config) {
    try {
        return json::parse(read_engine_file(stats_path(config)), stats_path(config));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace

EngineSettings engine_settings(const Config& config, const RunOptions& options) {
    EngineSettings settings;
    settings.tun_name = config.tun_name;
    const tun::AddressPlan plan = tun::address_plan(config);
    settings.tun_address_ipv4 = parse_ip_address(plan.ipv4.address, "TunAddressIPv4");
    settings.tun_address_ipv6 = parse_ip_address(plan.ipv6.address, "TunAddressIPv6");
    settings.tun_prefix_ipv4 = plan.ipv4.prefix_length;
    settings.tun_prefix_ipv6 = plan.ipv6.prefix_length;
    settings.nat_source_ipv4 = parse_ip_address(plan.ipv4.nat_source, "NAT source");
    settings.nat_source_ipv6 = parse_ip_address(plan.ipv6.nat_source, "NAT source");
    settings.dns_ipv4 = parse_ip_address(plan.ipv4.dns, "TunDnsIPv4");
    settings.dns_ipv6 = parse_ip_address(plan.ipv6.dns, "TunDnsIPv6");
    settings.dns_resolver = parse_ip_address(options.dns_resolver.empty() ? config.tun_dns_resolver : options.dns_resolver,
                                             "DNS resolver");
    std::string socks = options.socks;
    if (socks.empty()) socks = "127.0.0.1:" + std::to_string(local_socks_port(config));
    settings.socks = proxy::parse_proxy_address(socks);
    settings.is_udp_enabled = options.is_udp_enabled;
    return settings;
}

int run_engine(const Config& config, const RunOptions& options) {
    const EngineSettings settings = engine_settings(config, options);
    UniqueFd signal_fd = receive_signals({SIGTERM, SIGINT, SIGHUP, SIGUSR1});

    raise_open_file_limit(wanted_open_files);
    UniqueFd tun;
    std::unique_ptr<TcpFastPath> fast_path;
    if (::geteuid() == 0) {
        // Attach as root, then become the tunnel user for good, with no capability: the engine
        // could not lower the kill switch or change a route even if it were taken over.
        const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
        tun = attach_users_tun(settings.tun_name, user, TunFraming::virtio_net_header);
        prepare_engine_directory(config, user);
        if (options.is_fast_path_enabled) {
            std::string why;
            fast_path = TcpFastPath::attach(settings.tun_name, why);
            if (!fast_path) log::info("the kernel fast path is off (" + why + "): the engine NATs every TCP segment");
        }
        drop_privileges(user);
    } else {
        tun = attach_tun(settings.tun_name);
    }

    EventLoop loop;
    Engine engine(loop, std::move(tun), settings, std::move(fast_path));
    StatsPublisher publisher(config, options, engine);
    loop.add(signal_fd.get(), EPOLLIN, [&](std::uint32_t) {
        signalfd_siginfo info{};
        while (::read(signal_fd.get(), &info, sizeof info) == sizeof info) {
            if (info.ssi_signo == SIGUSR1)
                publisher.publish();
            else if (info.ssi_signo != SIGHUP)
                loop.stop();
        }
    });

    if (options.is_json) {
        std::printf("%s\n", json::Value(json::Object{{"event", "ready"}, {"device", settings.tun_name}, {"socks", settings.socks.text}})
                                .dump()
                                .c_str());
    } else {
        std::printf("psi-tun: %s carried into the SOCKS5 proxy %s\n", settings.tun_name.c_str(), settings.socks.text.c_str());
    }
    std::fflush(stdout);
    loop.run();
    publisher.publish();
    return exit_status::ok;
}

json::Value request_engine_stats(const Config& config) {
    std::string pid_text;
    try {
        pid_text = read_engine_file(pid_path(config));
    } catch (const Error&) {
        throw Error("no packet engine is running (no " + pid_path(config) + "): start psi-tun run");
    }
    long pid = 0;
    try {
        std::size_t used = 0;
        pid = std::stol(pid_text, &used);
        if (pid_text.substr(used) != "\n") pid = 0;
    } catch (const std::exception&) {
        pid = 0;
    }
    if (pid <= 1) throw Error(pid_path(config) + " does not hold a process id");

    // A process descriptor pins the process, so the checks below and the signal concern the
    // same one: a pid file written by the tunnel user cannot make us signal anyone else.
    const UniqueFd process(static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));
    if (!process.is_open()) throw Error("the packet engine (pid " + std::to_string(pid) + ") is not running");
    const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
    const std::string proc = "/proc/" + std::to_string(pid);
    struct stat info {};
    const std::string command = read_file_if_readable(proc + "/comm").value_or("");
    if (::stat(proc.c_str(), &info) != 0 || info.st_uid != user.uid || command != "psi-tun\n")
        throw Error("pid " + std::to_string(pid) + " is not the packet engine of " + user.name);

    // Counters newer than those on file now, from this engine (an earlier one counted anew).
    const auto generation_of = [&](const std::optional<json::Value>& document) -> std::int64_t {
        if (!document || document->get("pid", std::int64_t{-1}) != pid) return 0;
        return document->get("generation", std::int64_t{0});
    };
    const std::int64_t before = generation_of(published_counters(config));
    if (::syscall(SYS_pidfd_send_signal, process.get(), SIGUSR1, nullptr, 0) != 0)
        throw_system_error("cannot signal the packet engine", errno);
    for (int attempt = 0; attempt < 40; ++attempt) {
        std::this_thread::sleep_for(50ms);
        std::optional<json::Value> document = published_counters(config);
        if (generation_of(document) > before) return std::move(*document);
    }
    throw Error("the packet engine (pid " + std::to_string(pid) + ") did not publish its counters within 2 s");
}

}  // namespace psi::engine
