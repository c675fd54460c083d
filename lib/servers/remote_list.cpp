#include "servers/remote_list.hpp"

#include "core/encoding.hpp"
#include "core/error.hpp"
#include "servers/auth_package.hpp"
#include "servers/bootstrap_resolver.hpp"

namespace psi::servers {
namespace {

// RemoteServerListURLs: [{"URL": "<base64 of the URL>", "OnlyAfterAttempts": 0, ...}].
std::string first_listed_url(const json::Value& urls) {
    if (!urls.is_array()) throw Error("RemoteServerListURLs must be a list", exit_status::usage);
    for (const json::Value& item : urls.as_array()) {
        const json::Value* url = item.find("URL");
        const json::Value* after = item.find("OnlyAfterAttempts");
        if (!url || !url->is_string()) continue;
        if (after && after->is_number() && after->as_double() != 0) continue;
        auto decoded = encoding::base64_decode(url->as_string());
        if (!decoded) throw Error("RemoteServerListURLs: a URL is not base64", exit_status::usage);
        return *decoded;
    }
    throw Error("RemoteServerListURLs has no entry with OnlyAfterAttempts 0", exit_status::usage);
}

}  // namespace

std::string entry_signature_key(const Config& config) { return config.psiphon.server_entry_signature_public_key; }

RemoteListSettings remote_list_settings(const Config& config, const std::string& url) {
    RemoteListSettings settings;
    const PsiphonSettings& psiphon = config.psiphon;
    if (!url.empty())
        settings.url = url;
    else if (!psiphon.remote_server_list_url.empty())
        settings.url = psiphon.remote_server_list_url;
    else if (psiphon.remote_server_list_urls)
        settings.url = first_listed_url(*psiphon.remote_server_list_urls);
    settings.public_key = psiphon.remote_server_list_signature_public_key;
    settings.entry_signature_key = entry_signature_key(config);
    return settings;
}

FetchReport fetch_remote_list(Store& store, const RemoteListSettings& settings, const std::string& part_path,
                              std::int64_t now) {
    if (settings.url.empty())
        throw Error("no remote server list URL: set RemoteServerListUrl in the config or give --url", exit_status::usage);
    if (settings.public_key.empty())
        throw Error("no RemoteServerListSignaturePublicKey in the config: the list cannot be verified", exit_status::usage);

    DownloadRequest request;
    request.url = settings.url;
    request.proxy = settings.proxy;
    request.ca_file = settings.ca_file;
    request.part_path = part_path;
    request.max_bytes = settings.max_bytes;
    request.connect_timeout_seconds = settings.timeout_seconds;
    request.low_speed_seconds = settings.timeout_seconds;
    request.show_progress = settings.show_progress;
    if (!settings.is_etag_ignored) request.etag = store.remote.etag;
    check_resolvers(settings.resolvers);
    if (!settings.resolvers.empty() && settings.proxy.empty()) {
        const UrlHost target = url_host(settings.url);
        if (!target.is_address) {
            std::string addresses;
            for (const std::string& address : resolve_at(target.host, settings.resolvers))
                addresses += (addresses.empty() ? "" : ",") + (address.find(':') != std::string::npos ? "[" + address + "]" : address);
            request.resolved.push_back(target.host + ":" + std::to_string(target.port) + ":" + addresses);
        }
    }
    DownloadResult downloaded = download(request);

    FetchReport report;
    if (!downloaded.is_modified) return report;
    report.is_modified = true;
    report.bytes = downloaded.body.size();
    // A list compresses about sevenfold; four times the download limit leaves room and stops bombs.
    const std::string data =
        open_authenticated_package(downloaded.body, settings.public_key, PackageLimits{4 * settings.max_bytes});
    report.imported = import_entry_lines(store, data, ImportOptions{Source::remote, now, false, settings.entry_signature_key});
    // Recording the ETag would make every later fetch a 304: a list none of whose entries could
    // be used (a wrong ServerEntrySignaturePublicKey, say) must be fetched again once that is fixed.
    if (report.imported.is_all_skipped())
        throw Error("the remote list verified, but none of its " + std::to_string(report.imported.skipped_count()) +
                    " entries could be used (" + report.imported.skipped.begin()->first + "); the store is unchanged");
    store.remote.etag = downloaded.etag;
    store.remote.last_success = now;
    return report;
}

}  // namespace psi::servers
