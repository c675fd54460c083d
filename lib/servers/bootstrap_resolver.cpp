#include "servers/bootstrap_resolver.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <optional>

#include "core/byte_reader.hpp"
#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace psi::servers {
namespace {

constexpr std::uint16_t dns_port = 53;
constexpr std::uint16_t class_in = 1;
constexpr std::uint16_t flag_response = 0x8000;
constexpr std::uint16_t flag_recursion_desired = 0x0100;
constexpr std::uint16_t rcode_mask = 0x000f;
constexpr std::uint16_t rcode_no_such_name = 3;
constexpr std::size_t max_name_bytes = 253;
constexpr std::size_t max_label_bytes = 63;
constexpr std::size_t max_reply_bytes = 4096;
constexpr int max_pointer_jumps = 16;

std::vector<std::string> labels_of(const std::string& name) {
    std::string text = name;
    if (!text.empty() && text.back() == '.') text.pop_back();
    if (text.empty() || text.size() > max_name_bytes) throw Error("cannot resolve \"" + name + "\": not a host name");
    std::vector<std::string> labels;
    std::size_t start = 0;
    for (;;) {
        const std::size_t dot = text.find('.', start);
        const std::string label = text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
        if (label.empty() || label.size() > max_label_bytes)
            throw Error("cannot resolve \"" + name + "\": not a host name");
        labels.push_back(label);
        if (dot == std::string::npos) return labels;
        start = dot + 1;
    }
}

std::string lower(std::string_view text) {
    std::string result(text);
    std::transform(result.begin(), result.end(), result.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return result;
}

void put_u16(std::string& out, std::uint16_t value) {
    out.push_back(static_cast<char>(value >> 8));
    out.push_back(static_cast<char>(value & 0xff));
}

// A name in the question: labels only, as a query carries it; lower case, dot-separated.
std::optional<std::string> read_question_name(ByteReader& reader) {
    std::string name;
    for (;;) {
        const std::uint8_t length = reader.u8();
        if (reader.is_short() || length > max_label_bytes) return std::nullopt;
        if (length == 0) return name;
        const std::string_view label = reader.take_text(length);
        if (reader.is_short()) return std::nullopt;
        if (!name.empty()) name += '.';
        name += lower(label);
        if (name.size() > max_name_bytes) return std::nullopt;
    }
}

// Past a name in the answer section, labels or a compression pointer; its value is not needed.
bool skip_name(ByteReader& reader) {
    for (int steps = 0; steps < 128; ++steps) {
        const std::uint8_t length = reader.u8();
        if (reader.is_short()) return false;
        if (length == 0) return true;
        if ((length & 0xc0) == 0xc0) {  // a pointer ends the name
            reader.skip(1);
            return !reader.is_short();
        }
        if (length > max_label_bytes) return false;
        reader.skip(length);
        if (reader.is_short()) return false;
    }
    return false;
}

std::optional<std::string> printable(std::string_view data, std::uint16_t type) {
    char text[INET6_ADDRSTRLEN] = "";
    if (type == dns_type_a && data.size() == 4) return ::inet_ntop(AF_INET, data.data(), text, sizeof text);
    if (type == dns_type_aaaa && data.size() == 16) return ::inet_ntop(AF_INET6, data.data(), text, sizeof text);
    return std::nullopt;
}

std::uint16_t random_id() {
    std::uint16_t id = 0;
    while (::getrandom(&id, sizeof id, 0) != sizeof id) {
    }
    return id;
}

struct Resolver {
    sockaddr_storage address{};
    socklen_t length = 0;
};

std::optional<Resolver> resolver_address(const std::string& text) {
    Resolver resolver;
    auto& ipv4 = reinterpret_cast<sockaddr_in&>(resolver.address);
    auto& ipv6 = reinterpret_cast<sockaddr_in6&>(resolver.address);
    if (::inet_pton(AF_INET, text.c_str(), &ipv4.sin_addr) == 1) {
        ipv4.sin_family = AF_INET;
        ipv4.sin_port = htons(dns_port);
        resolver.length = sizeof ipv4;
        return resolver;
    }
    if (::inet_pton(AF_INET6, text.c_str(), &ipv6.sin6_addr) == 1) {
        ipv6.sin6_family = AF_INET6;
        ipv6.sin6_port = htons(dns_port);
        resolver.length = sizeof ipv6;
        return resolver;
    }
    return std::nullopt;
}

struct Question {
    std::uint16_t type;
    std::uint16_t id = 0;
    bool is_answered = false;
};

// One attempt at one resolver: both questions sent, replies read until both are answered or
// the time is up. The socket is connected, so only the resolver's own address can answer.
void ask(const Resolver& resolver, const std::string& host, std::chrono::milliseconds timeout,
         std::vector<std::string>& addresses, bool& has_no_such_name) {
    UniqueFd socket(::socket(resolver.address.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket.is_open() ||
        ::connect(socket.get(), reinterpret_cast<const sockaddr*>(&resolver.address), resolver.length) != 0)
        return;
    Question questions[] = {{dns_type_a}, {dns_type_aaaa}};
    for (Question& question : questions) {
        question.id = random_id();
        const std::string query = build_dns_query(question.id, host, question.type);
        if (::send(socket.get(), query.data(), query.size(), 0) < 0) return;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buffer[max_reply_bytes];
    while (!questions[0].is_answered || !questions[1].is_answered) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return;
        pollfd readable{socket.get(), POLLIN, 0};
        if (::poll(&readable, 1, static_cast<int>(left.count())) <= 0) continue;
        const ssize_t n = ::recv(socket.get(), buffer, sizeof buffer, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return;  // refused: nothing listens there
        }
        for (Question& question : questions) {
            if (question.is_answered) continue;
            const DnsReply reply =
                parse_dns_reply(std::string_view(buffer, static_cast<std::size_t>(n)), question.id, host, question.type);
            if (reply.answer == DnsAnswer::not_ours) continue;
            question.is_answered = true;
            if (reply.answer == DnsAnswer::no_such_name) has_no_such_name = true;
            addresses.insert(addresses.end(), reply.addresses.begin(), reply.addresses.end());
        }
    }
}

}  // namespace

std::string build_dns_query(std::uint16_t id, const std::string& name, std::uint16_t type) {
    std::string query;
    put_u16(query, id);
    put_u16(query, flag_recursion_desired);
    put_u16(query, 1);  // one question, no other records
    put_u16(query, 0);
    put_u16(query, 0);
    put_u16(query, 0);
    for (const std::string& label : labels_of(name)) {
        query.push_back(static_cast<char>(label.size()));
        query += label;
    }
    query.push_back('\0');
    put_u16(query, type);
    put_u16(query, class_in);
    return query;
}

DnsReply parse_dns_reply(std::string_view bytes, std::uint16_t id, const std::string& name, std::uint16_t type) {
    ByteReader reader(bytes);
    const std::uint16_t reply_id = reader.u16();
    const std::uint16_t flags = reader.u16();
    const std::uint16_t questions = reader.u16();
    const std::uint16_t answers = reader.u16();
    reader.skip(4);  // authority and additional counts
    if (reader.is_short()) return {};
    if (reply_id != id || !(flags & flag_response) || questions != 1) return {};
    const auto question_name = read_question_name(reader);
    const std::uint16_t question_type = reader.u16();
    const std::uint16_t question_class = reader.u16();
    std::string wanted = lower(name);
    if (!wanted.empty() && wanted.back() == '.') wanted.pop_back();
    if (!question_name || reader.is_short() || *question_name != wanted || question_type != type ||
        question_class != class_in)
        return {};

    DnsReply reply;
    const unsigned rcode = flags & rcode_mask;
    if (rcode == rcode_no_such_name) return {DnsAnswer::no_such_name, {}};
    if (rcode != 0) return {DnsAnswer::failed, {}};
    for (unsigned record = 0; record < answers; ++record) {
        if (!skip_name(reader)) return {DnsAnswer::failed, {}};
        const std::uint16_t record_type = reader.u16();
        const std::uint16_t record_class = reader.u16();
        reader.skip(4);  // TTL
        const std::string_view data = reader.take_text(reader.u16());
        if (reader.is_short()) return {DnsAnswer::failed, {}};
        if (record_type != type || record_class != class_in) continue;  // a CNAME on the way, say
        if (const auto address = printable(data, type)) reply.addresses.push_back(*address);
    }
    reply.answer = DnsAnswer::addresses;
    return reply;
}

void check_resolvers(const std::vector<std::string>& resolvers) {
    for (const std::string& text : resolvers)
        if (!resolver_address(text)) throw Error("--resolver " + text + ": not an IP address", exit_status::usage);
}

std::vector<std::string> resolve_at(const std::string& host, const std::vector<std::string>& resolvers,
                                    std::chrono::milliseconds timeout, int attempts) {
    check_resolvers(resolvers);
    labels_of(host);  // a name that cannot be asked fails before anything is sent
    bool has_no_such_name = false;
    for (const std::string& text : resolvers) {
        const auto resolver = resolver_address(text);
        for (int attempt = 0; attempt < attempts; ++attempt) {
            std::vector<std::string> addresses;
            ask(*resolver, host, timeout, addresses, has_no_such_name);
            if (!addresses.empty()) return addresses;
            if (has_no_such_name) break;
        }
    }
    if (has_no_such_name) throw Error("cannot resolve " + host + ": no such name at the resolver");
    throw Error("cannot resolve " + host + ": no answer from the resolver" +
                (resolvers.size() == 1 ? " " + resolvers.front() : "s"));
}

}  // namespace psi::servers
