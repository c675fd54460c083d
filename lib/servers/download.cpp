#include "servers/download.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <strings.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace psi::servers {
namespace {

struct CurlFree {
    void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct SlistFree {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct UrlFree {
    void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlTextFree {
    void operator()(char* text) const { curl_free(text); }
};

// State shared with libcurl's callbacks during one transfer.
struct Transfer {
    UniqueFd part;
    std::size_t resumed_from = 0;
    std::size_t received = 0;
    std::size_t max_bytes = 0;
    std::string etag;
    long status = 0;
    bool is_too_large = false;
    bool is_opened = false;
    std::string part_path;
};

std::string read_optional(const std::string& path) {
    try {
        return read_file(path);
    } catch (const Error&) {
        return "";
    }
}

size_t on_header(char* buffer, size_t size, size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    std::string line(buffer, size * count);
    // A status line starts a new response (after a redirect): the body callback needs its
    // status before the first byte to know whether the server resumed.
    if (line.rfind("HTTP/", 0) == 0) {
        transfer->etag.clear();
        auto space = line.find(' ');
        transfer->status = space == std::string::npos ? 0 : std::strtol(line.c_str() + space + 1, nullptr, 10);
    }
    constexpr std::string_view name = "etag:";
    if (line.size() > name.size() && strncasecmp(line.c_str(), name.data(), name.size()) == 0) {
        std::string value = line.substr(name.size());
        value.erase(0, value.find_first_not_of(" \t"));
        value.erase(value.find_last_not_of(" \t\r\n") + 1);
        transfer->etag = value;
    }
    return size * count;
}

// Opens the .part file on the first body byte, knowing by then whether the server resumed (206).
size_t on_body(char* buffer, size_t size, size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const size_t bytes = size * count;
    if (transfer->status != 200 && transfer->status != 206) return bytes;  // an error page: discard
    if (!transfer->is_opened) {
        const bool is_resumed = transfer->status == 206;
        if (!is_resumed) transfer->resumed_from = 0;
        // Written through the descriptor opened without following links: the directory may
        // belong to the tunnel user, and root must never be led to write elsewhere.
        try {
            transfer->part = open_private_file(transfer->part_path, O_WRONLY | (is_resumed ? O_APPEND : O_TRUNC));
        } catch (const Error&) {
            return 0;
        }
        transfer->is_opened = true;
    }
    if (transfer->resumed_from + transfer->received + bytes > transfer->max_bytes) {
        transfer->is_too_large = true;
        return 0;
    }
    try {
        write_all(transfer->part.get(), std::string_view(buffer, bytes), transfer->part_path);
    } catch (const Error&) {
        return 0;
    }
    transfer->received += bytes;
    return bytes;
}

int on_progress(void*, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
    if (total > 0) {
        const int width = 40;
        const int done = static_cast<int>(width * now / total);
        std::fprintf(stderr, "\r[%.*s%*s] %3d%% %lld KiB", done, "========================================", width - done,
                     "", static_cast<int>(100 * now / total), static_cast<long long>(now / 1024));
    } else {
        std::fprintf(stderr, "\r%lld KiB", static_cast<long long>(now / 1024));
    }
    return 0;
}

void set(CURL* handle, CURLoption option, auto value) {
    if (curl_easy_setopt(handle, option, value) != CURLE_OK) throw Error("libcurl refused an option");
}

}  // namespace

UrlHost url_host(const std::string& url) {
    std::unique_ptr<CURLU, UrlFree> parsed(curl_url());
    if (!parsed || curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK)
        throw Error("not a URL: " + url, exit_status::usage);
    char* host_text = nullptr;
    char* port_text = nullptr;
    const bool has_host = curl_url_get(parsed.get(), CURLUPART_HOST, &host_text, 0) == CURLUE_OK;
    std::unique_ptr<char, CurlTextFree> host(host_text);
    const bool has_port = curl_url_get(parsed.get(), CURLUPART_PORT, &port_text, CURLU_DEFAULT_PORT) == CURLUE_OK;
    std::unique_ptr<char, CurlTextFree> port(port_text);
    if (!has_host || !has_port) throw Error("no host in the URL " + url, exit_status::usage);
    UrlHost result;
    result.host = host.get();
    result.port = std::strtol(port.get(), nullptr, 10);
    if (result.host.size() > 2 && result.host.front() == '[') {
        result.host = result.host.substr(1, result.host.size() - 2);
        result.is_address = true;
    } else {
        in_addr ignored{};
        result.is_address = ::inet_pton(AF_INET, result.host.c_str(), &ignored) == 1;
    }
    return result;
}

DownloadResult download(const DownloadRequest& request) {
    static const bool is_initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (!is_initialised) throw Error("cannot initialise libcurl");
    std::unique_ptr<CURL, CurlFree> handle(curl_easy_init());
    if (!handle) throw Error("cannot initialise libcurl");

    Transfer transfer;
    transfer.part_path = request.part_path;
    transfer.max_bytes = request.max_bytes;
    const std::string part_etag = read_optional(request.part_path + ".etag");
    std::error_code ignored;
    const auto part_size = std::filesystem::exists(request.part_path, ignored)
                               ? std::filesystem::file_size(request.part_path, ignored)
                               : 0;

    std::unique_ptr<curl_slist, SlistFree> headers;
    auto add_header = [&](const std::string& header) {
        headers.reset(curl_slist_append(headers.release(), header.c_str()));
    };
    if (!request.etag.empty()) add_header("If-None-Match: " + request.etag);
    if (part_size > 0 && !part_etag.empty()) {
        transfer.resumed_from = part_size;
        add_header("Range: bytes=" + std::to_string(part_size) + "-");
        add_header("If-Range: " + part_etag);
    }

    std::unique_ptr<curl_slist, SlistFree> resolved;
    for (const std::string& entry : request.resolved) resolved.reset(curl_slist_append(resolved.release(), entry.c_str()));

    CURL* curl = handle.get();
    char error_buffer[CURL_ERROR_SIZE] = "";
    set(curl, CURLOPT_URL, request.url.c_str());
    set(curl, CURLOPT_PROTOCOLS_STR, "https");
    set(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    set(curl, CURLOPT_FOLLOWLOCATION, 1L);
    set(curl, CURLOPT_MAXREDIRS, 5L);
    set(curl, CURLOPT_NOSIGNAL, 1L);
    set(curl, CURLOPT_ERRORBUFFER, error_buffer);
    set(curl, CURLOPT_CONNECTTIMEOUT, request.connect_timeout_seconds);
    set(curl, CURLOPT_TIMEOUT, request.total_timeout_seconds);
    set(curl, CURLOPT_LOW_SPEED_LIMIT, request.low_speed_bytes_per_second);
    set(curl, CURLOPT_LOW_SPEED_TIME, request.low_speed_seconds);
    set(curl, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(request.max_bytes));
    set(curl, CURLOPT_HTTPHEADER, headers.get());
    set(curl, CURLOPT_HEADERFUNCTION, on_header);
    set(curl, CURLOPT_HEADERDATA, &transfer);
    set(curl, CURLOPT_WRITEFUNCTION, on_body);
    set(curl, CURLOPT_WRITEDATA, &transfer);
    if (!request.proxy.empty()) set(curl, CURLOPT_PROXY, request.proxy.c_str());
    if (resolved) set(curl, CURLOPT_RESOLVE, resolved.get());
    if (!request.ca_file.empty()) set(curl, CURLOPT_CAINFO, request.ca_file.c_str());
    if (request.show_progress) {
        set(curl, CURLOPT_NOPROGRESS, 0L);
        set(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    }
    const CURLcode result = curl_easy_perform(curl);
    if (request.show_progress) std::fputc('\n', stderr);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    transfer.part.reset();

    if (transfer.is_too_large || result == CURLE_FILESIZE_EXCEEDED) {
        std::filesystem::remove(request.part_path, ignored);
        std::filesystem::remove(request.part_path + ".etag", ignored);
        throw Error("the remote server list is larger than " + std::to_string(request.max_bytes >> 20) + " MiB");
    }
    if (result != CURLE_OK) {
        // Keep what arrived, with the ETag it belongs to, so the next run resumes.
        if (transfer.is_opened && !transfer.etag.empty() && transfer.etag.rfind("W/", 0) != 0)
            replace_file(request.part_path + ".etag", transfer.etag, 0600);
        const std::string reason = error_buffer[0] ? error_buffer : curl_easy_strerror(result);
        throw Error("download failed: " + reason +
                    (transfer.received ? " (" + std::to_string(transfer.received) + " bytes kept to resume)" : ""));
    }
    if (status == 304) return DownloadResult{false, "", request.etag};
    if (status != 200 && status != 206)
        throw Error("download failed: the server answered HTTP " + std::to_string(status));

    DownloadResult downloaded{true, transfer.is_opened ? read_file(request.part_path) : "", transfer.etag};
    std::filesystem::remove(request.part_path, ignored);
    std::filesystem::remove(request.part_path + ".etag", ignored);
    log::debug("downloaded " + std::to_string(transfer.received) + " bytes" +
               (status == 206 ? ", resumed after " + std::to_string(transfer.resumed_from) : std::string()));
    return downloaded;
}

}  // namespace psi::servers
