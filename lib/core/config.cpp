#include "core/config.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "core/atomic_file.hpp"
#include "core/error.hpp"

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

bool is_prefix(int family, const std::string& text) {
    auto slash = text.find('/');
    if (slash == std::string::npos) return false;
    const std::string length = text.substr(slash + 1);
    const int max_length = family == AF_INET ? 32 : 128;
    if (length.empty() || length.size() > 3 ||
        length.find_first_not_of("0123456789") != std::string::npos)
        return false;
    return std::stoi(length) <= max_length && is_address(family, text.substr(0, slash));
}

using StringField = std::string Config::*;

struct StringKey {
    const char* name;
    StringField field;
    enum class Check { none, interface_name, ipv4, ipv6, ipv4_prefix, ipv6_prefix, path } check;
};

const std::array string_keys = {
    StringKey{"TunnelUser", &Config::tunnel_user, StringKey::Check::none},
    StringKey{"TunnelGroup", &Config::tunnel_group, StringKey::Check::none},
    StringKey{"TunName", &Config::tun_name, StringKey::Check::interface_name},
    StringKey{"TunAddressIPv4", &Config::tun_address_ipv4, StringKey::Check::ipv4_prefix},
    StringKey{"TunAddressIPv6", &Config::tun_address_ipv6, StringKey::Check::ipv6_prefix},
    StringKey{"TunDnsIPv4", &Config::tun_dns_ipv4, StringKey::Check::ipv4},
    StringKey{"TunDnsIPv6", &Config::tun_dns_ipv6, StringKey::Check::ipv6},
    StringKey{"DataRootDirectory", &Config::data_root_directory, StringKey::Check::path},
    StringKey{"RunDirectory", &Config::run_directory, StringKey::Check::path},
};

void check_string(std::string_view source, const StringKey& key, const json::Value& value,
                  const std::string& text) {
    using Check = StringKey::Check;
    switch (key.check) {
        case Check::none:
            if (text.empty()) fail_at(source, value, key.name, "must not be empty");
            break;
        case Check::interface_name:
            if (text.empty() || text.size() >= IFNAMSIZ ||
                text.find_first_of("/ \t\n\"") != std::string::npos)
                fail_at(source, value, key.name,
                        "must be an interface name of 1 to 15 characters without spaces or '/'");
            break;
        case Check::ipv4:
            if (!is_address(AF_INET, text)) fail_at(source, value, key.name, "must be an IPv4 address");
            break;
        case Check::ipv6:
            if (!is_address(AF_INET6, text)) fail_at(source, value, key.name, "must be an IPv6 address");
            break;
        case Check::ipv4_prefix:
            if (!is_prefix(AF_INET, text))
                fail_at(source, value, key.name, "must be an IPv4 address with a prefix length, such as 10.200.3.1/24");
            break;
        case Check::ipv6_prefix:
            if (!is_prefix(AF_INET6, text))
                fail_at(source, value, key.name, "must be an IPv6 address with a prefix length, such as fd42:42:42::1/64");
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
        if (!is_psi_key && !is_psiphon_key(key))
            config.warnings.push_back(std::string(source) + " line " + std::to_string(value.line()) +
                                      ": unknown key " + key + " (ignored)");
    }
    config.document = std::move(document);
    config.path = std::string(source);
    return config;
}

Config load_config(const std::string& path) {
    struct stat info {};
    if (stat(path.c_str(), &info) != 0) {
        if (errno == ENOENT && path == default_config_path) return Config{};
        throw Error("cannot read config " + path + ": " + std::strerror(errno), exit_status::usage);
    }
    if (!S_ISREG(info.st_mode)) throw Error("config " + path + " is not a regular file", exit_status::usage);
    if (geteuid() == 0 && (info.st_uid != 0 || (info.st_mode & (S_IWGRP | S_IWOTH))))
        throw Error("refusing config " + path +
                        ": it must be owned by root and writable only by root (chmod 600)",
                    exit_status::usage);

    std::string text;
    try {
        text = read_file(path);
    } catch (const Error& error) {
        throw Error(error.what(), exit_status::usage);
    }
    return parse_config(text, path);
}

}  // namespace psi
