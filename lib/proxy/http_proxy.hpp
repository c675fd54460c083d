// The request head of an HTTP proxy client: "CONNECT host:port" or an absolute-URI request
// ("GET http://host[:port]/path HTTP/1.1"), parsed from untrusted bytes with limits.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/socks5.hpp"

namespace psi::proxy {

inline constexpr std::size_t max_http_head = 16 * 1024;

struct HttpProxyRequest {
    bool is_connect = false;
    std::string host;  // without brackets for IPv6 literals
    std::uint16_t port = 0;
    // For absolute-URI requests: the head to send upstream, rewritten to origin form
    // ("GET /path HTTP/1.1"), hop-by-hop headers (Proxy-Connection, Proxy-Authorization,
    // Connection and the headers it names, Keep-Alive, TE, Trailer, Upgrade) removed,
    // "Connection: close" added, ending in "\r\n\r\n". Empty for CONNECT.
    std::string upstream_head;
};

struct ParsedHttpHead {
    ParseStatus status = ParseStatus::need_more;
    std::size_t consumed = 0;  // bytes of the head, including the final CRLF CRLF
    HttpProxyRequest request;
    int error_status = 400;    // when malformed: 400, 405 (method), 414 (URI), 431 (head too large), 501 (scheme)
};

// Needs the whole head (up to "\r\n\r\n"); more than max_http_head bytes without it is
// malformed (431). Only "http://" absolute URIs (501 otherwise); CONNECT needs
// "host:port" with a port 1..65535; HTTP/1.0 or HTTP/1.1.
ParsedHttpHead parse_http_proxy_head(std::string_view bytes);

// "HTTP/1.1 <status> <reason>\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", or for
// 200 on CONNECT "HTTP/1.1 200 Connection established\r\n\r\n".
std::string http_proxy_response(int status);

}  // namespace psi::proxy
