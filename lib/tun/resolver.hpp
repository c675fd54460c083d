// Pointing the system's resolver at the in-tunnel DNS addresses, and putting it back:
// systemd-resolved when it runs (link DNS on the TUN, routing domain "~.", default route),
// otherwise /etc/resolv.conf, whose previous content or symlink is kept to be restored.
#pragma once

#include <string>
#include <vector>

#include "core/json.hpp"

namespace psi::tun {

// Run by absolute path: root never looks tools up in PATH.
inline constexpr const char* ip_tool = "/usr/sbin/ip";
inline constexpr const char* resolvectl_tool = "/usr/bin/resolvectl";

struct ResolverSettings {
    std::string tun_name;
    std::string dns_ipv4;
    std::string dns_ipv6;
    std::string resolv_conf = "/etc/resolv.conf";
    std::string backup_directory;  // where the previous resolv.conf is kept (RunDirectory)
    std::string resolved_upstream = "/run/systemd/resolve/resolv.conf";  // systemd-resolved's servers
};

// The addresses of resolv.conf text's nameserver lines, in order.
std::vector<std::string> nameservers_in(const std::string& resolv_conf_text);

// The uplink's own resolvers from before psi-tun up, from its record (uplinkResolvers): where
// the bootstrap fetch of a first run resolves the list's host, as the tunnel user. Loopback
// resolvers are left out: what they forward, the kill switch stops.
std::vector<std::string> uplink_resolvers(const json::Value& record);

// Two steps, so that the record is saved before anything changes: plan keeps the previous
// resolv.conf (or notes its symlink or absence) and returns the record; apply then points the
// resolver at the tunnel; restore undoes it from the record.
json::Value plan_resolver_change(const ResolverSettings& settings);
void apply_resolver_change(const ResolverSettings& settings, const json::Value& record);
void restore_resolver(const ResolverSettings& settings, const json::Value& record);

// Writes a file in place of `path`: by rename, or, where the path is a mount point (as
// `ip netns exec` and containers bind-mount resolv.conf), by rewriting that file in place.
void replace_or_rewrite(const std::string& path, const std::string& content);

// Rewrites an existing file in place, never following a symlink (for /proc/sys too).
void rewrite_in_place(const std::string& path, const std::string& content);

}  // namespace psi::tun
