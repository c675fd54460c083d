// One HTTPS download with libcurl, made for a hostile network: HTTPS only, bounded size,
// timeouts against slow senders, If-None-Match with the last ETag, and resumption of a cut
// transfer from a .part file with Range and If-Range.
#pragma once

#include <cstddef>
#include <string>

namespace psi::servers {

struct DownloadRequest {
    std::string url;
    std::string proxy;      // e.g. "socks5h://127.0.0.1:1081"; "" = direct
    std::string ca_file;    // "" = the system's CA store
    std::string etag;       // of the copy we have; a match gives "not modified"
    std::string part_path;  // where a partial download is kept; its ETag in part_path + ".etag"
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

// Throws psi::Error with one line naming what failed (connection, TLS, HTTP status, size,
// timeout). A transfer cut in the middle leaves the .part file for the next attempt.
DownloadResult download(const DownloadRequest& request);

}  // namespace psi::servers
