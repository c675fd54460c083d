#include "tun/resolver.hpp"

#include <fcntl.h>
#include <linux/stat.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "core/atomic_file.hpp"
#include "core/byte_reader.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/process.hpp"

namespace psi::tun {
namespace {

constexpr const char* written_by_psi_tun = "# written by psi-tun up; psi-tun down restores the previous file\n";

// systemd-resolved is used only when it runs and the resolv.conf in force goes through its
// stub; under `ip netns exec` with a resolv.conf of the namespace's own, resolvectl would
// configure the host's resolver instead.
bool is_resolved_in_use(const std::string& resolv_conf) {
    struct stat info {};
    if (::stat("/run/systemd/resolve/io.systemd.Resolve", &info) != 0 || ::access(resolvectl_tool, X_OK) != 0)
        return false;
    try {
        return read_file(resolv_conf).find("nameserver 127.0.0.53") != std::string::npos;
    } catch (const Error&) {
        return false;
    }
}

// The next word of a line, after the blanks before it; empty at the line's end.
std::string_view next_word(ByteReader& line) {
    constexpr std::string_view blanks = " \t\v\f\r";
    line.skip(std::min(line.rest_text().find_first_not_of(blanks), line.remaining()));
    return line.take_text(std::min(line.rest_text().find_first_of(blanks), line.remaining()));
}

bool is_loopback_address(const std::string& address) {
    return address.rfind("127.", 0) == 0 || address == "::1";
}

// The resolvers psi-tun up is about to replace, for the bootstrap fetch (uplink_resolvers).
json::Value uplink_resolvers_of(const std::string& resolv_conf_text, const ResolverSettings& settings) {
    json::Value servers = json::Array{};
    for (const std::string& server : nameservers_in(resolv_conf_text))
        if (!is_loopback_address(server) && server != settings.dns_ipv4 && server != settings.dns_ipv6)
            servers.as_array().push_back(server);
    return servers;
}

std::string read_or_empty(const std::string& path) {
    try {
        return read_file(path);
    } catch (const Error&) {
        return "";
    }
}

bool is_mount_root(const std::string& path) {
    struct statx info {};
    return ::statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &info) == 0 &&
           (info.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (info.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

std::string symlink_target(const std::string& path) {
    char target[PATH_MAX];
    ssize_t length = ::readlink(path.c_str(), target, sizeof target - 1);
    return length < 0 ? "" : std::string(target, static_cast<std::size_t>(length));
}

}  // namespace

void rewrite_in_place(const std::string& path, const std::string& content) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.is_open()) throw_system_error("cannot write " + path, errno);
    write_all(fd.get(), content, path);
    ::fsync(fd.get());
}

namespace {

void restore_symlink(const std::string& path, const std::string& target) {
    const std::string temporary = path + ".psi-tun";
    ::unlink(temporary.c_str());
    if (::symlink(target.c_str(), temporary.c_str()) != 0) throw_system_error("cannot create " + temporary, errno);
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        const int error = errno;
        ::unlink(temporary.c_str());
        throw_system_error("cannot restore the symlink " + path, error);
    }
}

}  // namespace

void replace_or_rewrite(const std::string& path, const std::string& content) {
    // rename(2) onto a mount point fails with EBUSY; the mounted file itself is writable.
    if (is_mount_root(path)) rewrite_in_place(path, content);
    else replace_file(path, content, 0644);
}

std::vector<std::string> nameservers_in(const std::string& resolv_conf_text) {
    std::vector<std::string> servers;
    ByteReader lines(resolv_conf_text);
    while (!lines.at_end()) {
        ByteReader line(lines.take_until_or_rest("\n"));
        const std::string_view keyword = next_word(line);
        const std::string_view address = next_word(line);
        if (keyword == "nameserver" && !address.empty()) servers.emplace_back(address);
    }
    return servers;
}

std::vector<std::string> uplink_resolvers(const json::Value& record) {
    std::vector<std::string> servers;
    const json::Value* listed = record.find("uplinkResolvers");
    if (!listed || !listed->is_array()) return servers;
    for (const json::Value& server : listed->as_array())
        if (server.is_string() && !is_loopback_address(server.as_string())) servers.push_back(server.as_string());
    return servers;
}

json::Value plan_resolver_change(const ResolverSettings& settings) {
    json::Value record = json::Object{};
    if (is_resolved_in_use(settings.resolv_conf)) {
        record.set("method", "systemd-resolved");
        record.set("link", settings.tun_name);
        record.set("uplinkResolvers", uplink_resolvers_of(read_or_empty(settings.resolved_upstream), settings));
        return record;
    }
    record.set("method", "resolv.conf");
    record.set("uplinkResolvers", uplink_resolvers_of(read_or_empty(settings.resolv_conf), settings));
    struct stat info {};
    if (::lstat(settings.resolv_conf.c_str(), &info) == 0 && S_ISLNK(info.st_mode)) {
        record.set("symlink", symlink_target(settings.resolv_conf));
        return record;
    }
    std::string previous;
    try {
        previous = read_file(settings.resolv_conf);
    } catch (const Error&) {
        record.set("absent", true);
        return record;
    }
    if (previous.rfind(written_by_psi_tun, 0) == 0) {
        // psi's own file, left by an up whose record a reboot erased: the real one is lost.
        record.set("previousLost", true);
        return record;
    }
    const std::string backup = settings.backup_directory + "/resolv.conf.before-psi-tun";
    replace_file(backup, previous, 0600);
    record.set("backup", backup);
    return record;
}

void apply_resolver_change(const ResolverSettings& settings, const json::Value& record) {
    if (record.find("method")->as_string() == "systemd-resolved") {
        run_checked({resolvectl_tool, "dns", settings.tun_name, settings.dns_ipv4, settings.dns_ipv6});
        run_checked({resolvectl_tool, "domain", settings.tun_name, "~."});
        run_checked({resolvectl_tool, "default-route", settings.tun_name, "yes"});
        run_checked({resolvectl_tool, "llmnr", settings.tun_name, "no"});
        run_checked({resolvectl_tool, "mdns", settings.tun_name, "no"});
        return;
    }
    replace_or_rewrite(settings.resolv_conf, std::string(written_by_psi_tun) +
                                             "nameserver " + settings.dns_ipv4 + "\nnameserver " + settings.dns_ipv6 +
                                             "\noptions edns0 trust-ad\n");
}

void restore_resolver(const ResolverSettings& settings, const json::Value& record) {
    const json::Value* method = record.find("method");
    if (!method || !method->is_string()) return;
    if (method->as_string() == "systemd-resolved") {
        // Link settings go with the link; revert in case the link stays.
        const json::Value* link = record.find("link");
        run_process({resolvectl_tool, "revert", link && link->is_string() ? link->as_string() : settings.tun_name});
        return;
    }
    if (const json::Value* target = record.find("symlink")) {
        restore_symlink(settings.resolv_conf, target->as_string());
    } else if (const json::Value* backup = record.find("backup")) {
        replace_or_rewrite(settings.resolv_conf, read_file(backup->as_string()));
    } else if (record.find("absent")) {
        ::unlink(settings.resolv_conf.c_str());
    } else if (record.find("previousLost")) {
        log::warning(settings.resolv_conf + " from before psi-tun was lost (a restart while it was up); "
                     "it still names the in-tunnel resolver: put the right one back by hand");
        return;
    }
    log::debug("restored " + settings.resolv_conf);
}

}  // namespace psi::tun
