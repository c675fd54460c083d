// Pointing the system's resolver at the in-tunnel DNS addresses, and putting it back:
// systemd-resolved when it runs (link DNS on the TUN, routing domain "~.", default route),
// otherwise /etc/resolv.conf, whose previous content or symlink is kept to be restored.
#pragma once

#include <string>

#include "core/json.hpp"

namespace psi::tun {

struct ResolverSettings {
    std::string tun_name;
    std::string dns_ipv4;
    std::string dns_ipv6;
    std::string resolv_conf = "/etc/resolv.conf";
    std::string backup_directory;  // where the previous resolv.conf is kept (RunDirectory)
};

// Returns what was changed, as a JSON record for restore_resolver.
json::Value point_resolver_at_tunnel(const ResolverSettings& settings);
void restore_resolver(const ResolverSettings& settings, const json::Value& record);

// Writes a file in place of `path`: by rename, or, where the path is a mount point (as
// `ip netns exec` and containers bind-mount resolv.conf), by rewriting it in place.
void replace_or_rewrite(const std::string& path, const std::string& content);

}  // namespace psi::tun
