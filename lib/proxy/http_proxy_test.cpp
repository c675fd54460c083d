#include "proxy/http_proxy.hpp"

#include <gtest/gtest.h>

#include <cctype>

#include "core/error.hpp"

namespace psi::proxy {
namespace {

using namespace std::string_literals;

ParsedHttpHead parse(std::string_view bytes) { return parse_http_proxy_head(bytes); }

int error_of(std::string_view bytes) {
    const auto parsed = parse(bytes);
    return parsed.status == ParseStatus::malformed ? parsed.error_status : 0;
}

// The rewritten head must end in exactly one blank line, whatever came before it.
void expect_single_head_end(const std::string& head) {
    ASSERT_GE(head.size(), 4u);
    EXPECT_EQ(head.find("\r\n\r\n"), head.size() - 4) << head;
}

TEST(HttpProxyConnect, ParsesHostAndPortAndLeavesTheTunnelBytes) {
    const std::string head = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    const auto parsed = parse(head + "\x16\x03\x01\x02\x00");
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, head.size());
    EXPECT_TRUE(parsed.request.is_connect);
    EXPECT_EQ(parsed.request.host, "example.com");
    EXPECT_EQ(parsed.request.port, 443);
    EXPECT_EQ(parsed.request.upstream_head, "");
}

TEST(HttpProxyConnect, TakesIpv6LiteralsInBrackets) {
    const auto parsed = parse("CONNECT [2001:db8::1]:8443 HTTP/1.0\r\n\r\n");
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.request.host, "2001:db8::1");
    EXPECT_EQ(parsed.request.port, 8443);
    EXPECT_EQ(error_of("CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(error_of("CONNECT [2001:db8::1 HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(error_of("CONNECT [not-v6]:443 HTTP/1.1\r\n\r\n"), 400);
    EXPECT_EQ(error_of("CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n"), 400);
}

TEST(HttpProxyConnect, NeedsAPortFrom1To65535) {
    EXPECT_EQ(parse("CONNECT a:1 HTTP/1.1\r\n\r\n").request.port, 1);
    EXPECT_EQ(parse("CONNECT a:65535 HTTP/1.1\r\n\r\n").request.port, 65535);
    for (const char* target : {"a", "a:", "a:0", "a:65536", "a:99999999999", "a:-1", "a:+80", "a:8 0", "a:0x50",
                               ":443", "user@a:443", "a:443/path", "[::1]", "[::1]443"})
        EXPECT_EQ(error_of(std::string("CONNECT ") + target + " HTTP/1.1\r\n\r\n"), 400) << target;
}

TEST(HttpProxyAbsolute, RewritesToOriginFormWithDefaultPort80) {
    const auto parsed = parse("GET http://example.com/a/b?c=d HTTP/1.1\r\nUser-Agent: test\r\nAccept: */*\r\n\r\n");
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_FALSE(parsed.request.is_connect);
    EXPECT_EQ(parsed.request.host, "example.com");
    EXPECT_EQ(parsed.request.port, 80);
    EXPECT_EQ(parsed.request.upstream_head,
              "GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test\r\nAccept: */*\r\n"
              "Connection: close\r\n\r\n");
}

TEST(HttpProxyAbsolute, KeepsAnExplicitPortAndIpv6LiteralsInTheHostHeader) {
    const auto parsed = parse("HEAD http://[::1]:8080 HTTP/1.0\r\n\r\n");
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.request.host, "::1");
    EXPECT_EQ(parsed.request.port, 8080);
    EXPECT_EQ(parsed.request.upstream_head, "HEAD / HTTP/1.0\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n");

    const auto v6_default = parse("GET http://[2001:db8::2]/x HTTP/1.1\r\n\r\n");
    ASSERT_EQ(v6_default.status, ParseStatus::complete);
    EXPECT_EQ(v6_default.request.port, 80);
    EXPECT_NE(v6_default.request.upstream_head.find("\r\nHost: [2001:db8::2]\r\n"), std::string::npos);
}

TEST(HttpProxyAbsolute, FillsInAnEmptyPath) {
    EXPECT_EQ(parse("GET http://a HTTP/1.1\r\n\r\n").request.upstream_head.substr(0, 16), "GET / HTTP/1.1\r\n");
    EXPECT_EQ(parse("GET http://a?q=1 HTTP/1.1\r\n\r\n").request.upstream_head.substr(0, 20), "GET /?q=1 HTTP/1.1\r\n");
    EXPECT_EQ(parse("GET HTTP://A:81/ HTTP/1.1\r\n\r\n").request.port, 81);
}

TEST(HttpProxyAbsolute, DoesNotTrustTheHostHeader) {
    const auto parsed = parse("GET http://good.example/ HTTP/1.1\r\nHost: evil.example\r\nhost: evil2.example\r\n\r\n");
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.request.host, "good.example");
    EXPECT_EQ(parsed.request.upstream_head.find("evil"), std::string::npos);
    EXPECT_NE(parsed.request.upstream_head.find("\r\nHost: good.example\r\n"), std::string::npos);

    const auto connect = parse("CONNECT good.example:443 HTTP/1.1\r\nHost: evil.example:22\r\n\r\n");
    EXPECT_EQ(connect.request.host, "good.example");
    EXPECT_EQ(connect.request.port, 443);
}

TEST(HttpProxyAbsolute, DropsProxyAndHopByHopHeadersInAnyCase) {
    const auto parsed = parse(
        "POST http://a.example/submit HTTP/1.1\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "PROXY-AUTHORIZATION: Basic dXNlcjpwYXNz\r\n"
        "proxy-whatever: 1\r\n"
        "cOnNeCtIoN: Keep-Alive, X-Secret,, x-other\r\n"
        "Keep-Alive: timeout=5\r\n"
        "TE: trailers\r\n"
        "Trailer: Expires\r\n"
        "Upgrade: websocket\r\n"
        "X-Secret: token\r\n"
        "X-OTHER: 2\r\n"
        "Content-Type: text/plain\r\n"
        "Content-Length: 5\r\n"
        "X-Empty:\r\n"
        "X-Spaced:   padded value \t\r\n"
        "\r\n"
        "hello");
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    const std::string& head = parsed.request.upstream_head;
    EXPECT_EQ(head,
              "POST /submit HTTP/1.1\r\nHost: a.example\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
              "X-Empty: \r\nX-Spaced: padded value\r\nConnection: close\r\n\r\n");
    expect_single_head_end(head);
    const std::string lower = [&] {
        std::string text = head;
        for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return text;
    }();
    for (const char* gone : {"proxy-", "keep-alive", "\r\nte:", "trailer", "upgrade", "x-secret", "x-other"})
        EXPECT_EQ(lower.find(gone), std::string::npos) << gone;
}

TEST(HttpProxyAbsolute, LeavesTheBodyUnconsumed) {
    const std::string head = "POST http://a/ HTTP/1.1\r\nContent-Length: 11\r\n\r\n";
    const auto parsed = parse(head + "hello world");
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, head.size());
    expect_single_head_end(parsed.request.upstream_head);
}

TEST(HttpProxyAbsolute, AcceptsTheUsualMethodsOnly) {
    for (const char* method : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
        EXPECT_EQ(parse(std::string(method) + " http://a/ HTTP/1.1\r\n\r\n").status, ParseStatus::complete) << method;
    for (const char* method : {"TRACE", "BREW", "get", "Connect", "PROPFIND"})
        EXPECT_EQ(error_of(std::string(method) + " http://a/ HTTP/1.1\r\n\r\n"), 405) << method;
    EXPECT_EQ(error_of("G(T http://a/ HTTP/1.1\r\n\r\n"), 400);
}

TEST(HttpProxyAbsolute, TakesOnlyHttpAbsoluteUris) {
    EXPECT_EQ(error_of("GET https://a/ HTTP/1.1\r\n\r\n"), 501);
    EXPECT_EQ(error_of("GET ftp://a/ HTTP/1.1\r\n\r\n"), 501);
    EXPECT_EQ(error_of("GET ws://a/ HTTP/1.1\r\n\r\n"), 501);
    for (const char* target : {"/", "/index.html", "*", "a.example/", "http:/a/", "http:a", "1http://a/",
                               "http://", "http:///x", "http://a/#frag", "http://u:p@a/", "http://a:/",
                               "http://a:0/", "http://exa%6dple/", "http://a!b/", "http://[::1/", "http://a/\xc3\xa9"})
        EXPECT_EQ(error_of(std::string("GET ") + target + " HTTP/1.1\r\n\r\n"), 400) << target;
}

TEST(HttpProxyHead, NeedsMoreUntilTheBlankLine) {
    const std::string head = "GET http://a/ HTTP/1.1\r\nAccept: */*\r\n\r\n";
    for (std::size_t size = 0; size < head.size(); ++size)
        EXPECT_EQ(parse(head.substr(0, size)).status, ParseStatus::need_more) << size;
    EXPECT_EQ(parse(head).status, ParseStatus::complete);
}

// Bare LF is refused rather than accepted as a line end: the head then has exactly one possible
// end, the same one every parser upstream sees. It is refused as soon as it arrives.
TEST(HttpProxyHead, RefusesBareLineFeedsAndCarriageReturns) {
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\n\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nAccept: */*\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\n\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\r\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n"), 400);
}

TEST(HttpProxyHead, RefusesControlCharacters) {
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX: a\0b\r\n\r\n"s), 400);
    EXPECT_EQ(error_of("GET http://a/\0 HTTP/1.1\r\n\r\n"s), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX: a\x01\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX: \x7f\r\n\r\n"), 400);
    EXPECT_EQ(parse("GET http://a/ HTTP/1.1\r\nX: a\tb\r\n\r\n").status, ParseStatus::complete);
    EXPECT_EQ(parse("GET http://a/ HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n").status, ParseStatus::complete);
}

TEST(HttpProxyHead, RefusesObsFoldAndMalformedFieldLines) {
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX-A : one\r\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nno colon here\r\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\n: empty name\r\n\r\n"), 400);
    EXPECT_EQ(error_of("GET http://a/ HTTP/1.1\r\nX(A): one\r\n\r\n"), 400);
}

TEST(HttpProxyHead, RefusesMalformedRequestLines) {
    for (const char* line : {"", "GET", "GET http://a/", "GET  http://a/ HTTP/1.1", "GET http://a/  HTTP/1.1",
                             "GET http://a/ HTTP/1.1 ", " GET http://a/ HTTP/1.1", "GET http://a/ HTTP/2.0",
                             "GET http://a/ HTTP/1.2", "GET http://a/ http/1.1", "GET http://a/ HTTP/1",
                             "GET\thttp://a/ HTTP/1.1"})
        EXPECT_EQ(error_of(std::string(line) + "\r\n\r\n"), 400) << line;
    EXPECT_EQ(error_of("\r\nGET http://a/ HTTP/1.1\r\n\r\n"), 400);
}

TEST(HttpProxyHead, RefusesATargetOver8KiBEvenBeforeTheHeadEnds) {
    const std::string path(8 * 1024 - std::string("http://a/").size(), 'p');
    const auto longest = parse("GET http://a/" + path + " HTTP/1.1\r\n\r\n");
    EXPECT_EQ(longest.status, ParseStatus::complete);
    EXPECT_EQ(error_of("GET http://a/" + path + "p HTTP/1.1\r\n\r\n"), 414);
    EXPECT_EQ(error_of("GET http://a/" + path + "p"), 414);
    EXPECT_EQ(error_of("CONNECT " + std::string(9000, 'a') + ":443 HTTP/1.1\r\n\r\n"), 414);
}

TEST(HttpProxyHead, RefusesAHeadOver16KiB) {
    const std::string start = "GET http://a/ HTTP/1.1\r\n";
    std::string headers;
    while (start.size() + headers.size() < max_http_head) headers += "X-Filler: " + std::string(100, 'f') + "\r\n";
    EXPECT_EQ(error_of(start + headers), 431);
    EXPECT_EQ(error_of(start + headers + "\r\n"), 431);
    const std::string filler(max_http_head - start.size() - std::string("X: \r\n\r\n").size(), 'f');
    const std::string largest = start + "X: " + filler + "\r\n\r\n";
    ASSERT_EQ(largest.size(), max_http_head);
    EXPECT_EQ(parse(largest).status, ParseStatus::complete);
    EXPECT_EQ(parse(largest.substr(0, max_http_head - 1)).status, ParseStatus::need_more);
    EXPECT_EQ(error_of(start + "X: " + filler + "f\r\n\r\n"), 431);
}

TEST(HttpProxyHead, RefusesAmbiguousBodyFraming) {
    const std::string start = "POST http://a/ HTTP/1.1\r\n";
    EXPECT_EQ(error_of(start + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    EXPECT_EQ(error_of(start + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
    EXPECT_EQ(error_of(start + "Content-Length: 5, 5\r\n\r\n"), 400);
    EXPECT_EQ(error_of(start + "Content-Length: -1\r\n\r\n"), 400);
    EXPECT_EQ(error_of(start + "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400);
    EXPECT_EQ(error_of(start + "Transfer-Encoding:\r\n\r\n"), 400);
    EXPECT_EQ(error_of("POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
    for (const char* named : {"Content-Length", "transfer-encoding", "HOST"})
        EXPECT_EQ(error_of(start + "Connection: close, " + named + "\r\n\r\n"), 400) << named;
    EXPECT_EQ(error_of(start + "Connection: a b\r\n\r\n"), 400);
    EXPECT_EQ(parse(start + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n").status, ParseStatus::complete);
    const auto chunked = parse(start + "Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n\r\n");
    ASSERT_EQ(chunked.status, ParseStatus::complete);
    EXPECT_NE(chunked.request.upstream_head.find("Transfer-Encoding: Chunked\r\n"), std::string::npos);
}

TEST(HttpProxyResponse, WritesTheFixedResponses) {
    EXPECT_EQ(http_proxy_response(200), "HTTP/1.1 200 Connection established\r\n\r\n");
    EXPECT_EQ(http_proxy_response(405),
              "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    for (int status : {400, 403, 414, 431, 501, 502, 503, 504}) {
        const std::string response = http_proxy_response(status);
        EXPECT_EQ(response.substr(0, 13), "HTTP/1.1 " + std::to_string(status) + " ");
        EXPECT_EQ(response.find("\r\n\r\n"), response.size() - 4);
    }
    EXPECT_THROW(http_proxy_response(0), Error);
    EXPECT_THROW(http_proxy_response(299), Error);
}

}  // namespace
}  // namespace psi::proxy
