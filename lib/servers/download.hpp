// One HTTPS download with libcurl, made for a hostile network: HTTPS only, bounded size,
// timeouts against slow senders, If-None-Match with the last ETag, and resumption of a cut
// transfer from a .part file with Range and If-Range.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace psi::servers {

struct DownloadRequest {
    std::string url;
    std::string proxy;      // e.g. "socks5h://127.0.0.1:1081"; "" = direct
    std::string ca_file;    // "" = the system's CA store
    std::string etag;       // of the copy we have; a match gives "not modified"
    std::string part_path;  // where a partial download is kept; its ETag in part_path + ".etag"
    // Addresses for host names, as "HOST:PORT:ADDRESS[,ADDRESS...]", used instead of the
    // system's resolver (bootstrap_resolver.hpp).
    std::vector<std::string> resolved;
    std::size_t max_bytes = 64u << 20;
    long connect_timeout_seconds = 30;
    long total_timeout_seconds = 600;
    long low_speed_bytes_per_second = 512;  // slower than this for low_speed_seconds: give up
    long low_speed_seconds = 30;
    bool show_progress = false;  // a progress bar on stderr
};

struct DownloadResult {
    bool is_modified = true;
    std::string body;
    std::string etag;  // the server's, to send next time
};

// The host of an https URL and its port (443 when none is given); throws psi::Error (usage) for
// a URL that is not one.
struct UrlHost {
    std::string host;  // without brackets
    long port = 443;
    bool is_address = false;  // an IP literal: nothing to resolve
};
UrlHost url_host(const std::string& url);

// Throws psi::Error with one line naming what failed (connection, TLS, HTTP status, size,
// timeout). A transfer cut in the middle leaves the .part file for the next attempt.
DownloadResult download(const DownloadRequest& request);

}  // namespace psi::servers
