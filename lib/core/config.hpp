// psi.conf: Psiphon's client config keys plus psi's own (DESIGN §2).
// Loading names the key and line of anything wrong; unknown keys only warn.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"

namespace psi {

inline constexpr const char* default_config_path = "/etc/psiphon/psi.conf";

struct Config {
    // psi's own keys.
    std::string tunnel_user = "psiphon-user";
    std::string tunnel_group = "psiphon-group";
    std::string tun_name = "PsiphonTUN";
    std::string tun_address_ipv4 = "10.200.3.1/24";
    std::string tun_address_ipv6 = "fd42:42:42::1/64";
    std::string tun_dns_ipv4 = "10.200.3.2";
    std::string tun_dns_ipv6 = "fd42:42:42::2";
    // Where psi-tun sends what applications ask the in-tunnel DNS address, through the proxy.
    std::string tun_dns_resolver = "8.8.8.8";
    bool allow_lan = false;
    std::string data_root_directory = "/var/lib/psiphon";
    std::string run_directory = "/run/psiphon";
    // A server list shipped with psi (Psiphon's embedded list), imported when the store is
    // empty; empty: none.
    std::string embedded_server_list;

    // The whole document, so Psiphon's keys reach the programs that use them.
    json::Value document = json::Object{};
    std::string path;  // where it was read from; empty for built-in defaults
    std::vector<std::string> warnings;
};

// The local proxies' ports: LocalSocksProxyPort and LocalHttpProxyPort, or these when a key is
// unset or 0, so psi-connect and psi-tun run agree without a config.
inline constexpr int default_socks_port = 1080;
inline constexpr int default_http_port = 8080;
int local_socks_port(const Config& config);
int local_http_port(const Config& config);

// Reads and validates a config file. When `path` is the default path and the file does not
// exist, returns the built-in defaults. Refuses a file that others than its root owner could
// have written when running as root.
Config load_config(const std::string& path = default_config_path);

// Parses config text; `source` names it in messages.
Config parse_config(std::string_view text, std::string_view source);

}  // namespace psi
