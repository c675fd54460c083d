#include "proxy/http_proxy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <set>
#include <vector>

#include "core/byte_reader.hpp"
#include "core/error.hpp"

namespace psi::proxy {
namespace {

constexpr std::size_t max_request_target = 8 * 1024;
constexpr std::uint16_t default_http_port = 80;

// Methods forwarded for absolute URIs. TRACE is left out: it would echo the client's headers back.
constexpr std::array<std::string_view, 7> forwarded_methods = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
                                                               "PATCH"};

// Never forwarded upstream: the Host header is rebuilt from the URI; the rest are hop-by-hop.
constexpr std::array<std::string_view, 6> dropped_headers = {"host", "connection", "keep-alive", "te", "trailer",
                                                             "upgrade"};

// A Connection header may not name these: dropping them would change how the body is framed.
constexpr std::array<std::string_view, 3> framing_headers = {"host", "content-length", "transfer-encoding"};

ParsedHttpHead failure(int status) {
    ParsedHttpHead parsed;
    parsed.status = ParseStatus::malformed;
    parsed.error_status = status;
    return parsed;
}

bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool is_tchar(char c) {
    return is_letter(c) || is_digit(c) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view text) { return !text.empty() && std::all_of(text.begin(), text.end(), is_tchar); }

bool is_digits(std::string_view text) { return !text.empty() && std::all_of(text.begin(), text.end(), is_digit); }

// RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
bool is_scheme(std::string_view text) {
    return !text.empty() && is_letter(text.front()) && std::all_of(text.begin(), text.end(), [](char c) {
        return is_letter(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
    });
}

std::string lowercase(std::string_view text) {
    std::string lower(text);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    return lower;
}

std::string_view trim_whitespace(std::string_view text) {
    const std::size_t first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

template <std::size_t size>
bool is_one_of(std::string_view text, const std::array<std::string_view, size>& set) {
    return std::find(set.begin(), set.end(), text) != set.end();
}

// Comma-separated list elements, trimmed, empty ones skipped (RFC 9110 §5.6.1).
std::vector<std::string_view> list_elements(std::string_view value) {
    std::vector<std::string_view> elements;
    ByteReader reader(value);
    while (!reader.at_end()) {
        const std::string_view text = trim_whitespace(reader.take_until_or_rest(","));
        if (!text.empty()) elements.push_back(text);
    }
    return elements;
}

struct HeadScan {
    ParseStatus status = ParseStatus::need_more;
    std::size_t length = 0;
    int error_status = 400;
};

// Finds the end of the head and rejects what is wrong as early as it shows: CR and LF only as CRLF
// (a bare LF is not accepted as a line end, so the head has one unambiguous end), no control
// characters but HTAB, a request target of at most 8 KiB, a head of at most max_http_head bytes.
HeadScan scan_head(std::string_view bytes) {
    std::size_t position = 0;
    std::size_t line_break_run = 0;
    std::size_t spaces_in_request_line = 0;
    std::size_t target_length = 0;
    bool is_in_request_line = true;
    bool was_cr = false;
    for (const char c : bytes.substr(0, max_http_head)) {
        ++position;
        const auto byte = static_cast<unsigned char>(c);
        if (was_cr != (c == '\n')) return {ParseStatus::malformed, 0, 400};
        if ((byte < 0x20 && c != '\t' && c != '\r' && c != '\n') || byte == 0x7f)
            return {ParseStatus::malformed, 0, 400};
        if (is_in_request_line) {
            if (c == '\r')
                is_in_request_line = false;
            else if (c == ' ')
                ++spaces_in_request_line;
            else if (spaces_in_request_line == 1 && ++target_length > max_request_target)
                return {ParseStatus::malformed, 0, 414};
        }
        line_break_run = (c == '\r' || c == '\n') ? line_break_run + 1 : 0;
        if (line_break_run == 4) return {ParseStatus::complete, position, 0};
        was_cr = c == '\r';
    }
    if (bytes.size() >= max_http_head) return {ParseStatus::malformed, 0, 431};
    return {};
}

struct Authority {
    std::string host;
    std::uint16_t port = 0;
    bool is_valid = false;
};

bool is_host_name(std::string_view host) {
    return !host.empty() && host.size() <= 255 && std::all_of(host.begin(), host.end(), [](char c) {
        return is_letter(c) || is_digit(c) || c == '-' || c == '.' || c == '_';
    });
}

// host[:port] or [IPv6][:port]; no user information, no zone identifier, no empty port.
Authority parse_authority(std::string_view text, bool is_port_required) {
    Authority authority;
    std::string_view host;
    std::string_view after_host;
    if (text.starts_with('[')) {
        const std::size_t close = text.find(']');
        if (close == std::string_view::npos) return authority;
        host = text.substr(1, close - 1);
        after_host = text.substr(close + 1);
        in6_addr binary;
        if (inet_pton(AF_INET6, std::string(host).c_str(), &binary) != 1) return authority;
    } else {
        const std::size_t colon = text.find(':');
        host = text.substr(0, colon);
        after_host = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
        if (!is_host_name(host)) return authority;
    }
    if (after_host.empty()) {
        if (is_port_required) return authority;
        authority.port = default_http_port;
    } else {
        const std::string_view port = after_host.substr(1);
        unsigned value = 0;
        if (!after_host.starts_with(':') || !is_digits(port) || port.size() > 5) return authority;
        std::from_chars(port.data(), port.data() + port.size(), value);
        if (value < 1 || value > 65535) return authority;
        authority.port = static_cast<std::uint16_t>(value);
    }
    authority.host = std::string(host);
    authority.is_valid = true;
    return authority;
}

struct Field {
    std::string_view name;
    std::string_view value;
    std::string lower_name;
};

// Field lines up to the end of the head; nullopt on obs-fold or a line that is not "token:value".
std::optional<std::vector<Field>> parse_fields(ByteReader& reader) {
    std::vector<Field> fields;
    for (;;) {
        ByteReader line(reader.take_until("\r\n"));
        if (reader.is_short() || line.at_end()) break;
        if (line.rest_text().starts_with(' ') || line.rest_text().starts_with('\t')) return std::nullopt;  // obs-fold
        const std::string_view name = line.take_until(":");
        if (line.is_short()) return std::nullopt;
        if (!is_token(name)) return std::nullopt;  // also whitespace before the colon
        fields.push_back({name, trim_whitespace(line.take_rest_text()), lowercase(name)});
    }
    return fields;
}

// The body is relayed as it comes, so its framing must read the same to every parser after us:
// Content-Length and Transfer-Encoding unambiguous, and no Connection header that would have us
// drop one of them. Returns the header names Connection lists, or nullopt to refuse (400).
std::optional<std::set<std::string>> check_connection_and_framing(const std::vector<Field>& fields,
                                                                  std::string_view version) {
    std::set<std::string> named_by_connection;
    std::optional<std::string_view> content_length;
    std::vector<std::string_view> transfer_codings;
    bool has_transfer_encoding = false;
    for (const Field& field : fields) {
        if (field.lower_name == "connection") {
            for (const std::string_view element : list_elements(field.value)) {
                if (!is_token(element)) return std::nullopt;
                const std::string name = lowercase(element);
                if (is_one_of(name, framing_headers)) return std::nullopt;
                named_by_connection.insert(name);
            }
        } else if (field.lower_name == "content-length") {
            if (!is_digits(field.value) || (content_length && *content_length != field.value)) return std::nullopt;
            content_length = field.value;
        } else if (field.lower_name == "transfer-encoding") {
            has_transfer_encoding = true;
            const auto codings = list_elements(field.value);
            transfer_codings.insert(transfer_codings.end(), codings.begin(), codings.end());
        }
    }
    if (has_transfer_encoding && (content_length || version == "HTTP/1.0" || transfer_codings.empty() ||
                                  lowercase(transfer_codings.back()) != "chunked"))
        return std::nullopt;
    return named_by_connection;
}

// Origin form, Host from the URI, the client's end-to-end fields in order, "Connection: close".
std::string rewrite_head(std::string_view method, std::string_view path, std::string_view version,
                         const Authority& authority, const std::vector<Field>& fields,
                         const std::set<std::string>& named_by_connection) {
    std::string head;
    head.append(method).append(" ");
    if (!path.starts_with('/')) head += '/';
    head.append(path).append(" ").append(version).append("\r\n");
    const bool is_ipv6 = authority.host.find(':') != std::string::npos;
    head.append("Host: ").append(is_ipv6 ? "[" + authority.host + "]" : authority.host);
    if (authority.port != default_http_port) head.append(":").append(std::to_string(authority.port));
    head.append("\r\n");
    for (const Field& field : fields) {
        if (is_one_of(field.lower_name, dropped_headers) || field.lower_name.starts_with("proxy-") ||
            named_by_connection.contains(field.lower_name))
            continue;
        head.append(field.name).append(": ").append(field.value).append("\r\n");
    }
    head.append("Connection: close\r\n\r\n");
    return head;
}

}  // namespace

ParsedHttpHead parse_http_proxy_head(std::string_view bytes) {
    const HeadScan scan = scan_head(bytes);
    if (scan.status == ParseStatus::need_more) return {};
    if (scan.status == ParseStatus::malformed) return failure(scan.error_status);

    // The head without its final CRLF: every line ends in CRLF.
    ByteReader reader(bytes.substr(0, scan.length - 2));
    ByteReader request_line(reader.take_until("\r\n"));
    const std::string_view method = request_line.take_until(" ");
    const std::string_view target = request_line.take_until(" ");
    const std::string_view version = request_line.take_rest_text();
    if (request_line.is_short()) return failure(400);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return failure(400);
    if (!is_token(method)) return failure(400);
    const bool is_connect = method == "CONNECT";
    if (!is_connect && !is_one_of(method, forwarded_methods)) return failure(405);
    if (target.empty() || std::any_of(target.begin(), target.end(), [](char c) {
            return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f;
        }))
        return failure(400);

    const auto fields = parse_fields(reader);
    if (!fields) return failure(400);
    const auto named_by_connection = check_connection_and_framing(*fields, version);
    if (!named_by_connection) return failure(400);

    ParsedHttpHead parsed;
    parsed.status = ParseStatus::complete;
    parsed.consumed = scan.length;
    HttpProxyRequest& request = parsed.request;
    request.is_connect = is_connect;

    if (is_connect) {
        const Authority authority = parse_authority(target, true);
        if (!authority.is_valid) return failure(400);
        request.host = authority.host;
        request.port = authority.port;
        return parsed;
    }

    // http://authority[/path][?query], the scheme in any case; anything but http is 501.
    const std::size_t scheme_end = target.find(':');
    const std::string_view scheme = target.substr(0, scheme_end);
    if (scheme_end == std::string_view::npos || !is_scheme(scheme)) return failure(400);
    if (lowercase(scheme) != "http") return failure(501);
    const std::string_view hierarchical = target.substr(scheme_end + 1);
    if (!hierarchical.starts_with("//") || hierarchical.find('#') != std::string_view::npos) return failure(400);
    const std::string_view after_slashes = hierarchical.substr(2);
    const std::size_t authority_end = std::min(after_slashes.find_first_of("/?"), after_slashes.size());
    const Authority authority = parse_authority(after_slashes.substr(0, authority_end), false);
    if (!authority.is_valid) return failure(400);
    request.host = authority.host;
    request.port = authority.port;
    request.upstream_head =
        rewrite_head(method, after_slashes.substr(authority_end), version, authority, *fields, *named_by_connection);
    return parsed;
}

std::string http_proxy_response(int status) {
    if (status == 200) return "HTTP/1.1 200 Connection established\r\n\r\n";
    static constexpr std::pair<int, std::string_view> reasons[] = {
        {400, "Bad Request"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {414, "URI Too Long"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    const auto found = std::find_if(std::begin(reasons), std::end(reasons),
                                    [status](const auto& reason) { return reason.first == status; });
    if (found == std::end(reasons))
        throw Error("HTTP proxy: no response defined for status " + std::to_string(status));
    return "HTTP/1.1 " + std::to_string(status) + " " + std::string(found->second) +
           "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

}  // namespace psi::proxy
