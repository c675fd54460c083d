// libFuzzer target for the HTTP proxy head parser. Nothing may crash. A complete head ends in
// CRLF CRLF within max_http_head bytes and its one-byte-shorter prefix needs more; a rejection
// carries one of the documented statuses; a rewritten upstream head is origin-form, has one Host
// header, no Proxy-* or hop-by-hop header, no bare CR or LF, and ends in exactly one blank line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "proxy/http_proxy.hpp"

namespace {

using namespace psi::proxy;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "http_proxy_fuzz: %s\n", what);
    std::abort();
}

std::string lowercase(std::string_view text) {
    std::string lower(text);
    for (char& c : lower)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return lower;
}

void check_upstream_head(const std::string& head) {
    if (head.size() < 4 || head.find("\r\n\r\n") != head.size() - 4) fail("upstream head does not end once");
    for (std::size_t i = 0; i < head.size(); ++i) {
        const char c = head.at(i);
        if (c == '\r' && (i + 1 == head.size() || head.at(i + 1) != '\n')) fail("bare CR upstream");
        if (c == '\n' && (i == 0 || head.at(i - 1) != '\r')) fail("bare LF upstream");
        if (static_cast<unsigned char>(c) < 0x20 && c != '\r' && c != '\n' && c != '\t') fail("control upstream");
    }
    const std::size_t first_line_end = head.find("\r\n");
    const std::size_t space = head.find(' ');
    if (space == std::string::npos || space > first_line_end || head.at(space + 1) != '/')
        fail("upstream request line is not origin-form");
    int host_headers = 0;
    bool has_connection_close = false;
    std::size_t line_start = first_line_end + 2;
    while (line_start < head.size() - 2) {
        const std::size_t line_end = head.find("\r\n", line_start);
        const std::string line = head.substr(line_start, line_end - line_start);
        const std::string name = lowercase(line.substr(0, line.find(':')));
        if (name == "host") ++host_headers;
        if (name.starts_with("proxy-") || name == "keep-alive" || name == "te" || name == "trailer" ||
            name == "upgrade")
            fail("hop-by-hop header upstream");
        if (name == "connection") {
            if (line != "Connection: close" || has_connection_close) fail("client Connection header upstream");
            has_connection_close = true;
        }
        line_start = line_end + 2;
    }
    if (host_headers != 1 || !has_connection_close) fail("upstream head lacks Host or Connection: close");
}

void check(std::string_view input) {
    const auto parsed = parse_http_proxy_head(input);
    if (parsed.status == ParseStatus::malformed) {
        const int status = parsed.error_status;
        if (status != 400 && status != 405 && status != 414 && status != 431 && status != 501)
            fail("undocumented error status");
        http_proxy_response(status);
        return;
    }
    if (parsed.status == ParseStatus::need_more) {
        if (input.size() >= max_http_head) fail("needs more past the head limit");
        return;
    }
    if (parsed.consumed > input.size() || parsed.consumed > max_http_head || parsed.consumed < 4 ||
        input.substr(parsed.consumed - 4, 4) != "\r\n\r\n")
        fail("consumed is not a whole head");
    if (parse_http_proxy_head(input.substr(0, parsed.consumed - 1)).status != ParseStatus::need_more)
        fail("a shorter prefix does not need more");
    const auto exact = parse_http_proxy_head(input.substr(0, parsed.consumed));
    if (exact.status != ParseStatus::complete || exact.request.host != parsed.request.host ||
        exact.request.port != parsed.request.port || exact.request.upstream_head != parsed.request.upstream_head)
        fail("bytes after the head changed the result");
    const HttpProxyRequest& request = parsed.request;
    if (request.host.empty() || request.port == 0) fail("no destination");
    if (request.is_connect != request.upstream_head.empty()) fail("upstream head present for CONNECT or missing");
    if (!request.is_connect) check_upstream_head(request.upstream_head);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        check(std::string_view(reinterpret_cast<const char*>(data), size));
    } catch (const psi::Error& error) {
        std::fprintf(stderr, "http_proxy_fuzz: %s\n", error.what());
        std::abort();
    }
    return 0;
}
