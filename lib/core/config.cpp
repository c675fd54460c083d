#include "core/config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace psi {
namespace {

// Keys of Psiphon's client config (psiphon/config.go) that psi accepts without a warning.
constexpr std::array psiphon_keys = {
    "PropagationChannelId", "SponsorId", "ClientVersion", "ClientPlatform", "EgressRegion",
    "LimitTunnelProtocols", "TargetServerEntry", "UpstreamProxyURL", "UpstreamProxyUrl",
    "LocalSocksProxyPort", "LocalHttpProxyPort", "ListenInterface", "DisableLocalSocksProxy",
    "DisableLocalHTTPProxy", "RemoteServerListUrl", "RemoteServerListURLs",
    "RemoteServerListSignaturePublicKey", "RemoteServerListDownloadFilename",
    "ObfuscatedServerListRootURLs", "ServerEntrySignaturePublicKey", "DataRootDirectory",
    "DataStoreDirectory", "MigrateDataStoreDirectory", "TunnelPoolSize",
    "ConnectionWorkerPoolSize", "EstablishTunnelTimeoutSeconds", "SessionID", "Authorizations",
    "PacketTunnelTunFileDescriptor", "PacketTunnelTransparentDNSIPv4Address",
    "PacketTunnelTransparentDNSIPv6Address", "TargetAPIEncoding", "EmitDiagnosticNotices",
    "EmitBytesTransferred", "DisableRemoteServerListFetcher", "NetworkID", "BootstrapDNSServers",
    "EnableFeedbackUpload", "FeedbackUploadURLs", "FeedbackEncryptionPublicKey",
    "UseIndistinguishableTLS", "SplitTunnelOwnRegion", "DisableApi", "DisableTactics",
};

[[noreturn]] void fail_at(std::string_view source, const json::Value& value, std::string_view key,
                          std::string_view message) {
    throw Error(std::string(source) + " line " + std::to_string(value.line()) + ": " +
                    std::string(key) + " " + std::string(message),
                exit_status::usage);
}

std::string read_string(std::string_view source, std::string_view key, const json::Value& value) {
    if (!value.is_string()) fail_at(source, value, key, "must be a string");
    return value.as_string();
}

bool read_boolean(std::string_view source, std::string_view key, const json::Value& value) {
    if (!value.is_boolean()) fail_at(source, value, key, "must be true or false");
    return value.as_boolean();
}

bool is_address(int family, const std::string& text) {
    std::array<unsigned char, 16> buffer{};
    return inet_pton(family, text.c_str(), buffer.data()) == 1;
}

// A TUN prefix: long enough to be a private subnet, short enough to hold the addresses .1 to .3.
bool is_prefix(int family, const std::string& text) {
    auto slash = text.find('/');
    if (slash == std::string::npos) return false;
    const std::string length = text.substr(slash + 1);
    const int min_length = family == AF_INET ? 8 : 16;
    const int max_length = family == AF_INET ? 30 : 126;
    if (length.empty() || length.size() > 3 ||
        length.find_first_not_of("0123456789") != std::string::npos)
        return false;
    const int value = std::stoi(length);
    return value >= min_length && value <= max_length && is_address(family, text.substr(0, slash));
}

// Whether `address` lies inside `prefix` ("10.200.3.1/24").
bool is_inside(int family, const std::string& address, const std::string& prefix) {
    std::array<unsigned char, 16> a{}, b{};
    auto slash = prefix.find('/');
    if (inet_pton(family, address.c_str(), a.data()) != 1 ||
        inet_pton(family, prefix.substr(0, slash).c_str(), b.data()) != 1)
        return false;
    const int length = std::stoi(prefix.substr(slash + 1));
    for (int bit = 0; bit < length; ++bit) {
        const auto index = static_cast<std::size_t>(bit / 8);
        const unsigned mask = 0x80u >> (bit % 8);
        if ((a[index] & mask) != (b[index] & mask)) return false;
    }
    return true;
}

using StringField = std::string Config::*;

struct StringKey {
    const char* name;
    StringField field;
    enum class Check { none, interface_name, ip, ipv4, ipv6, ipv4_prefix, ipv6_prefix, path } check;
};

const std::array string_keys = {
    StringKey{"TunnelUser", &Config::tunnel_user, StringKey::Check::none},
    StringKey{"TunnelGroup", &Config::tunnel_group, StringKey::Check::none},
    StringKey{"TunName", &Config::tun_name, StringKey::Check::interface_name},
    StringKey{"TunAddressIPv4", &Config::tun_address_ipv4, StringKey::Check::ipv4_prefix},
    StringKey{"TunAddressIPv6", &Config::tun_address_ipv6, StringKey::Check::ipv6_prefix},
    StringKey{"TunDnsIPv4", &Config::tun_dns_ipv4, StringKey::Check::ipv4},
    StringKey{"TunDnsIPv6", &Config::tun_dns_ipv6, StringKey::Check::ipv6},
    StringKey{"TunDnsResolver", &Config::tun_dns_resolver, StringKey::Check::ip},
    StringKey{"DataRootDirectory", &Config::data_root_directory, StringKey::Check::path},
    StringKey{"RunDirectory", &Config::run_directory, StringKey::Check::path},
    StringKey{"EmbeddedServerList", &Config::embedded_server_list, StringKey::Check::path},
};

void check_string(std::string_view source, const StringKey& key, const json::Value& value,
                  const std::string& text) {
    using Check = StringKey::Check;
    switch (key.check) {
        case Check::none:
            if (text.empty()) fail_at(source, value, key.name, "must not be empty");
            break;
        case Check::interface_name:
            // No '*' (an nft wildcard), no quotes, no path or shell characters.
            if (text.empty() || text.size() >= IFNAMSIZ || text.front() == '-' ||
                text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
                    std::string::npos)
                fail_at(source, value, key.name,
                        "must be an interface name of 1 to 15 letters, digits, '_', '.' or '-', not starting with '-'");
            break;
        case Check::ip:
            if (!is_address(AF_INET, text) && !is_address(AF_INET6, text))
                fail_at(source, value, key.name, "must be an IPv4 or IPv6 address");
            break;
        case Check::ipv4:
            if (!is_address(AF_INET, text)) fail_at(source, value, key.name, "must be an IPv4 address");
            break;
        case Check::ipv6:
            if (!is_address(AF_INET6, text)) fail_at(source, value, key.name, "must be an IPv6 address");
            break;
        case Check::ipv4_prefix:
            if (!is_prefix(AF_INET, text))
                fail_at(source, value, key.name, "must be an IPv4 address with a prefix length from 8 to 30, such as 10.200.3.1/24");
            break;
        case Check::ipv6_prefix:
            if (!is_prefix(AF_INET6, text))
                fail_at(source, value, key.name, "must be an IPv6 address with a prefix length from 16 to 126, such as fd42:42:42::1/64");
            break;
        case Check::path:
            if (text.empty() || text.front() != '/') fail_at(source, value, key.name, "must be an absolute path");
            break;
    }
}

bool is_psiphon_key(std::string_view key) {
    for (const char* known : psiphon_keys)
        if (key == known) return true;
    return false;
}

template <typename Field>
struct PsiphonKey {
    const char* name;
    Field PsiphonSettings::*field;
};

const std::array psiphon_string_keys = {
    PsiphonKey<std::string>{"PropagationChannelId", &PsiphonSettings::propagation_channel_id},
    PsiphonKey<std::string>{"SponsorId", &PsiphonSettings::sponsor_id},
    PsiphonKey<std::string>{"EgressRegion", &PsiphonSettings::egress_region},
    PsiphonKey<std::string>{"RemoteServerListUrl", &PsiphonSettings::remote_server_list_url},
    PsiphonKey<std::string>{"RemoteServerListSignaturePublicKey",
                            &PsiphonSettings::remote_server_list_signature_public_key},
    PsiphonKey<std::string>{"ServerEntrySignaturePublicKey", &PsiphonSettings::server_entry_signature_public_key},
};
const std::array psiphon_optional_string_keys = {
    PsiphonKey<std::optional<std::string>>{"ClientVersion", &PsiphonSettings::client_version},
    PsiphonKey<std::optional<std::string>>{"ClientPlatform", &PsiphonSettings::client_platform},
};
const std::array psiphon_port_keys = {
    PsiphonKey<int>{"LocalSocksProxyPort", &PsiphonSettings::local_socks_port},
    PsiphonKey<int>{"LocalHttpProxyPort", &PsiphonSettings::local_http_port},
};
// Checked for their type, read by no program yet.
constexpr std::array checked_string_keys = {"TargetServerEntry", "UpstreamProxyUrl", "UpstreamProxyURL"};

std::vector<std::string> read_strings(std::string_view source, std::string_view key, const json::Value& value) {
    if (!value.is_array()) fail_at(source, value, key, "must be a list of strings");
    std::vector<std::string> items;
    for (const json::Value& item : value.as_array()) {
        if (!item.is_string()) fail_at(source, item, key, "must be a list of strings");
        items.push_back(item.as_string());
    }
    return items;
}

// Reads a Psiphon key into `settings`, checking its type.
void read_psiphon_value(std::string_view source, std::string_view key, const json::Value& value,
                        PsiphonSettings& settings) {
    for (const auto& [name, field] : psiphon_string_keys)
        if (key == name) settings.*field = read_string(source, key, value);
    for (const auto& [name, field] : psiphon_optional_string_keys)
        if (key == name) settings.*field = read_string(source, key, value);
    for (const char* name : checked_string_keys)
        if (key == name) read_string(source, key, value);
    for (const auto& [name, field] : psiphon_port_keys) {
        if (key != name) continue;
        // Range first: a number like 1e400 must never be converted to an integer.
        const double number = value.is_number() ? value.as_double() : -1;
        if (!(number >= 0 && number <= 65535) || number != static_cast<double>(static_cast<long>(number)))
            fail_at(source, value, key, "must be a port number from 0 to 65535");
        settings.*field = static_cast<int>(number);
    }
    if (key == "LimitTunnelProtocols") settings.limit_tunnel_protocols = read_strings(source, key, value);
    if (key == "BootstrapDNSServers") {
        read_strings(source, key, value);
        for (const json::Value& item : value.as_array())
            if (!is_address(AF_INET, item.as_string()) && !is_address(AF_INET6, item.as_string()))
                fail_at(source, item, key, "must list IP addresses");
    }
    if (key == "EstablishTunnelTimeoutSeconds") {
        if (!value.is_number() || !(value.as_double() >= 0)) fail_at(source, value, key, "must be a number of seconds");
        settings.establish_tunnel_timeout_seconds = static_cast<int>(std::min(value.as_double(), 2147483647.0));
    }
    if (key == "RemoteServerListURLs") settings.remote_server_list_urls = value;
}

}  // namespace

Config parse_config(std::string_view text, std::string_view source) {
    Config config;
    json::Value document;
    try {
        document = json::parse(text, source);
    } catch (const Error& error) {
        throw Error(error.what(), exit_status::usage);
    }
    if (!document.is_object())
        throw Error(std::string(source) + ": the config must be a JSON object", exit_status::usage);

    for (const auto& [key, value] : document.as_object()) {
        if (key == "AllowLan") {
            config.allow_lan = read_boolean(source, key, value);
            continue;
        }
        bool is_psi_key = false;
        for (const StringKey& string_key : string_keys) {
            if (key != string_key.name) continue;
            std::string text = read_string(source, key, value);
            check_string(source, string_key, value, text);
            config.*string_key.field = std::move(text);
            is_psi_key = true;
        }
        if (is_psi_key) continue;
        if (is_psiphon_key(key)) {
            read_psiphon_value(source, key, value, config.psiphon);
            continue;
        }
        config.warnings.push_back(std::string(source) + " line " + std::to_string(value.line()) +
                                      ": unknown key " + key + " (ignored)");
    }
    auto value_of = [&](const char* key, const char* other_key) -> const json::Value& {
        if (const json::Value* value = document.find(key)) return *value;
        return *document.find(other_key);  // one of the two was set, or the defaults would agree
    };
    if (!is_inside(AF_INET, config.tun_dns_ipv4, config.tun_address_ipv4))
        fail_at(source, value_of("TunDnsIPv4", "TunAddressIPv4"), "TunDnsIPv4", "must lie inside TunAddressIPv4");
    if (!is_inside(AF_INET6, config.tun_dns_ipv6, config.tun_address_ipv6))
        fail_at(source, value_of("TunDnsIPv6", "TunAddressIPv6"), "TunDnsIPv6", "must lie inside TunAddressIPv6");
    config.path = std::string(source);
    return config;
}

Config load_config(const std::string& path) {
    // Checked and read through one descriptor: the file judged is the file read.
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd.is_open()) {
        if (errno == ENOENT && path == default_config_path) return Config{};
        throw Error("cannot read config " + path + ": " + std::strerror(errno), exit_status::usage);
    }
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode))
        throw Error("config " + path + " is not a regular file", exit_status::usage);
    if (geteuid() == 0 && (info.st_uid != 0 || (info.st_mode & (S_IWGRP | S_IWOTH))))
        throw Error("refusing config " + path +
                        ": it must be owned by root and writable only by root (chmod 600)",
                    exit_status::usage);
    if (info.st_size > (1 << 20)) throw Error("config " + path + " is larger than 1 MiB", exit_status::usage);
    std::string text;
    try {
        text = read_all(fd.get(), "config " + path, 1 << 20);
    } catch (const Error& error) {
        throw Error(error.what(), exit_status::usage);
    }
    return parse_config(text, path);
}

int local_socks_port(const Config& config) {
    return config.psiphon.local_socks_port != 0 ? config.psiphon.local_socks_port : default_socks_port;
}

int local_http_port(const Config& config) {
    return config.psiphon.local_http_port != 0 ? config.psiphon.local_http_port : default_http_port;
}

}  // namespace psi
