// psi.conf: Psiphon's client config keys plus psi's own (docs/architecture.md §2).
// Loading names the key and line of anything wrong; unknown keys only warn.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"

namespace psi {

inline constexpr const char* default_config_path = "/etc/psiphon/psi.conf";

// The Psiphon client keys psi's programs read, parsed and type-checked when the config is
// loaded; an absent key keeps the default here.
struct PsiphonSettings {
    std::string propagation_channel_id;
    std::string sponsor_id;
    std::optional<std::string> client_version;   // unset: psi's own
    std::optional<std::string> client_platform;
    std::string egress_region;
    std::vector<std::string> limit_tunnel_protocols;  // empty: every protocol
    int establish_tunnel_timeout_seconds = 300;       // 0: forever
    int local_socks_port = 0;                         // 0: the default port
    int local_http_port = 0;
    std::string remote_server_list_url;
    std::optional<json::Value> remote_server_list_urls;  // RemoteServerListURLs as written
    std::string remote_server_list_signature_public_key;
    std::string server_entry_signature_public_key;
};

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

    PsiphonSettings psiphon;
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
