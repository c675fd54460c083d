#include "proxy/socks5_client.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "proxy/socks5.hpp"
#include "testing/test_support.hpp"

namespace psi::proxy {
namespace {

using namespace std::chrono_literals;
using psi::testing::bytes;

// ---- the method choice

TEST(SocksMethodChoice, AcceptsNoAuthenticationAndConsumesExactly) {
    const auto parsed = parse_method_choice(bytes({5, 0}));
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, 2u);
    EXPECT_TRUE(parsed.message.offers_no_authentication);

    const auto followed = parse_method_choice(bytes({5, 0, 5, 0, 0, 1}));
    ASSERT_EQ(followed.status, ParseStatus::complete);
    EXPECT_EQ(followed.consumed, 2u);
}

TEST(SocksMethodChoice, NeedsMoreUntilTwoBytes) {
    EXPECT_EQ(parse_method_choice("").status, ParseStatus::need_more);
    EXPECT_EQ(parse_method_choice(bytes({5})).status, ParseStatus::need_more);
}

TEST(SocksMethodChoice, RefusesOtherMethodsAndVersions) {
    EXPECT_EQ(parse_method_choice(bytes({5, 2})).status, ParseStatus::malformed);     // username/password
    EXPECT_EQ(parse_method_choice(bytes({5, 1})).status, ParseStatus::malformed);     // GSSAPI
    EXPECT_EQ(parse_method_choice(bytes({5, 0xff})).status, ParseStatus::malformed);  // none acceptable
    EXPECT_EQ(parse_method_choice(bytes({4, 0})).status, ParseStatus::malformed);
    EXPECT_EQ(parse_method_choice("HTTP/1.1 400 Bad Request\r\n").status, ParseStatus::malformed);
}

// ---- the reply

const std::string ipv4_reply = bytes({5, 0, 0, 1, 192, 0, 2, 7, 0x1f, 0x90});
const std::string ipv6_reply =
    bytes({5, 0, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb});
const std::string domain_reply = bytes({5, 0, 0, 3, 13}) + "proxy.example" + bytes({0, 53});

TEST(SocksReplyParse, ReadsAnIpv4BoundAddress) {
    const auto parsed = parse_reply(ipv4_reply);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, ipv4_reply.size());
    EXPECT_EQ(parsed.message.reply, SocksReply::succeeded);
    EXPECT_EQ(parsed.message.bound.type, AddressType::ipv4);
    EXPECT_EQ(parsed.message.bound.host, "192.0.2.7");
    EXPECT_EQ(parsed.message.bound.port, 8080);
}

TEST(SocksReplyParse, ReadsAnIpv6BoundAddressAsCanonicalText) {
    const auto parsed = parse_reply(ipv6_reply);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, ipv6_reply.size());
    EXPECT_EQ(parsed.message.bound.type, AddressType::ipv6);
    EXPECT_EQ(parsed.message.bound.host, "2001:db8::1");
    EXPECT_EQ(parsed.message.bound.port, 443);
}

TEST(SocksReplyParse, ReadsADomainBoundAddress) {
    const auto parsed = parse_reply(domain_reply);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, domain_reply.size());
    EXPECT_EQ(parsed.message.bound.type, AddressType::domain);
    EXPECT_EQ(parsed.message.bound.host, "proxy.example");
    EXPECT_EQ(parsed.message.bound.port, 53);
}

TEST(SocksReplyParse, NeedsMoreAtEveryPrefix) {
    for (const std::string& reply : {ipv4_reply, ipv6_reply, domain_reply}) {
        for (std::size_t size = 0; size < reply.size(); ++size)
            EXPECT_EQ(parse_reply(reply.substr(0, size)).status, ParseStatus::need_more)
                << size << " of " << reply.size();
    }
}

TEST(SocksReplyParse, ConsumesExactlyTheReplyWhenTheFarEndsBytesFollow) {
    for (const std::string& reply : {ipv4_reply, ipv6_reply, domain_reply}) {
        const auto parsed = parse_reply(reply + "HTTP/1.1 200 OK\r\n");
        ASSERT_EQ(parsed.status, ParseStatus::complete);
        EXPECT_EQ(parsed.consumed, reply.size());
    }
}

TEST(SocksReplyParse, CarriesTheReplyCode) {
    for (const int code : {1, 2, 3, 4, 5, 6, 7, 8}) {
        std::string reply = ipv4_reply;
        reply[1] = static_cast<char>(code);
        const auto parsed = parse_reply(reply);
        ASSERT_EQ(parsed.status, ParseStatus::complete) << code;
        EXPECT_EQ(parsed.message.reply, static_cast<SocksReply>(code));
    }
    std::string refused = ipv4_reply;
    refused[1] = 5;
    EXPECT_EQ(parse_reply(refused).message.reply, SocksReply::connection_refused);
}

TEST(SocksReplyParse, RefusesABadVersionReservedByteOrAddress) {
    std::string reply = ipv4_reply;
    reply[0] = 4;
    EXPECT_EQ(parse_reply(reply).status, ParseStatus::malformed);
    reply = ipv4_reply;
    reply[2] = 1;
    EXPECT_EQ(parse_reply(reply).status, ParseStatus::malformed);
    reply = ipv4_reply;
    reply[3] = 2;  // no such address type
    EXPECT_EQ(parse_reply(reply).status, ParseStatus::malformed);
    EXPECT_EQ(parse_reply(bytes({5, 0, 0, 3, 0, 0, 80})).status, ParseStatus::malformed);  // empty domain
    EXPECT_EQ(parse_reply(bytes({5, 0, 0, 3, 3, 'a', 0, 'b', 0, 80})).status, ParseStatus::malformed);
    EXPECT_EQ(parse_reply("HTTP/1.1 400 Bad Request\r\n").status, ParseStatus::malformed);
}

// ---- what the client sends

TEST(SocksClientEncode, TheGreetingOffersOnlyNoAuthentication) {
    EXPECT_EQ(no_authentication_greeting(), bytes({5, 1, 0}));
}

TEST(SocksClientEncode, RequestsForEachAddressType) {
    EXPECT_EQ(encode_request(SocksCommand::connect, {AddressType::ipv4, "192.0.2.7", 443}),
              bytes({5, 1, 0, 1, 192, 0, 2, 7, 0x01, 0xbb}));
    EXPECT_EQ(encode_request(SocksCommand::connect, {AddressType::ipv6, "2001:db8::1", 80}),
              bytes({5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80}));
    EXPECT_EQ(encode_request(SocksCommand::connect, {AddressType::domain, "example.com", 8080}),
              bytes({5, 1, 0, 3, 11}) + "example.com" + bytes({0x1f, 0x90}));
    EXPECT_EQ(encode_request(SocksCommand::udp_associate, {}), bytes({5, 3, 0, 1, 0, 0, 0, 0, 0, 0}));
}

TEST(SocksClientEncode, ARequestParsesBackOnTheServerSide) {
    const SocksAddress destination{AddressType::domain, "www.example.org", 443};
    const std::string request = encode_request(SocksCommand::connect, destination);
    const auto parsed = parse_request(request);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, request.size());
    EXPECT_EQ(parsed.message.command, SocksCommand::connect);
    EXPECT_EQ(parsed.message.destination.host, "www.example.org");
    EXPECT_EQ(parsed.message.destination.port, 443);
}

TEST(SocksClientEncode, RefusesAddressesThatCannotBeSent) {
    EXPECT_THROW(encode_request(SocksCommand::connect, {AddressType::ipv4, "example.com", 1}), Error);
    EXPECT_THROW(encode_request(SocksCommand::connect, {AddressType::ipv6, "10.0.0.1", 1}), Error);
    EXPECT_THROW(encode_request(SocksCommand::connect, {AddressType::domain, "", 1}), Error);
    EXPECT_THROW(encode_request(SocksCommand::connect, {AddressType::domain, std::string(256, 'a'), 1}), Error);
    EXPECT_THROW(encode_request(SocksCommand::connect, {AddressType::domain, "a\nb", 1}), Error);
}

TEST(SocksReplyName, NamesEveryCodeDistinctly) {
    std::set<std::string> names;
    for (int code = 0; code <= 8; ++code) names.insert(reply_name(static_cast<SocksReply>(code)));
    EXPECT_EQ(names.size(), 9u);
    EXPECT_STREQ(reply_name(SocksReply::succeeded), "succeeded");
    EXPECT_STREQ(reply_name(SocksReply::connection_refused), "connection refused");
    EXPECT_STREQ(reply_name(static_cast<SocksReply>(9)), "unknown reply");
    EXPECT_STREQ(reply_name(static_cast<SocksReply>(255)), "unknown reply");
}

// ---- the proxy address

TEST(SocksProxyAddress, ParsesIpv4AndBracketedIpv6) {
    const ProxyAddress v4 = parse_proxy_address("127.0.0.1:1080");
    ASSERT_EQ(v4.address.ss_family, AF_INET);
    EXPECT_EQ(v4.length, sizeof(sockaddr_in));
    const auto* in = reinterpret_cast<const sockaddr_in*>(&v4.address);
    EXPECT_EQ(ntohs(in->sin_port), 1080);
    EXPECT_EQ(ntohl(in->sin_addr.s_addr), 0x7f000001u);
    EXPECT_EQ(v4.text, "127.0.0.1:1080");

    const ProxyAddress v6 = parse_proxy_address("[::1]:65535");
    ASSERT_EQ(v6.address.ss_family, AF_INET6);
    EXPECT_EQ(v6.length, sizeof(sockaddr_in6));
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&v6.address);
    EXPECT_EQ(ntohs(in6->sin6_port), 65535);
    EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
    EXPECT_EQ(v6.text, "[::1]:65535");

    const ProxyAddress lowest = parse_proxy_address("[2001:db8::5]:1");
    EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in6*>(&lowest.address)->sin6_port), 1);
}

TEST(SocksProxyAddress, RefusesAMissingOrInvalidPort) {
    for (const char* text : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:99999999999999999999",
                             "127.0.0.1:80x", "127.0.0.1:http", "[::1]", "[::1]:", "[::1]:0", "[::1]:65536", "[::1]1080"}) {
        EXPECT_THROW(parse_proxy_address(text), Error) << text;
    }
}

TEST(SocksProxyAddress, RefusesNamesAndEmptyHosts) {
    for (const char* text : {"localhost:1080", "proxy.example:1080", ":1080", "[]:1080", "[localhost]:1080",
                             "127.0.0.1.5:1080", ""}) {
        EXPECT_THROW(parse_proxy_address(text), Error) << text;
    }
}

TEST(SocksProxyAddress, RefusesWhatCouldBeReadTwoWays) {
    // An IPv6 address without brackets (its last group or the port?), a signed or padded port,
    // an IPv4 address in brackets.
    for (const char* text : {"2001:db8::1:1080", "::1:1080", "127.0.0.1:+80", "127.0.0.1: 80", "[127.0.0.1]:80"}) {
        EXPECT_THROW(parse_proxy_address(text), Error) << text;
    }
}

// ---- the handshake against a SOCKS5 server written here


std::string read_exactly(int fd, std::size_t count) {
    std::string result;
    char buffer[512];
    while (result.size() < count) {
        const ssize_t got = ::recv(fd, buffer, std::min(sizeof buffer, count - result.size()), 0);
        if (got <= 0) break;
        result.append(buffer, static_cast<std::size_t>(got));
    }
    return result;
}

void write_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        const ssize_t written = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (written <= 0) return;
        sent += static_cast<std::size_t>(written);
    }
}

void wait_for_end_of_stream(int fd) {
    char buffer[512];
    while (::recv(fd, buffer, sizeof buffer, 0) > 0) {
    }
}

// A proxy on the loopback that accepts one connection and plays `script` on it in a thread.
// Reads on the accepted socket give up after 5 s, so a broken client cannot hang the test.
class ScriptedProxy {
public:
    using Script = std::function<void(int client)>;

    explicit ScriptedProxy(Script script, int family = AF_INET) {
        listener_.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!listener_.is_open()) throw std::runtime_error("socket failed");
        sockaddr_storage address{};
        socklen_t length = 0;
        if (family == AF_INET) {
            auto* in = reinterpret_cast<sockaddr_in*>(&address);
            in->sin_family = AF_INET;
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            length = sizeof(sockaddr_in);
        } else {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
            in6->sin6_family = AF_INET6;
            in6->sin6_addr = in6addr_loopback;
            length = sizeof(sockaddr_in6);
        }
        if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
            ::listen(listener_.get(), 1) != 0 ||
            ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
            throw std::runtime_error(std::string("cannot listen: ") + std::strerror(errno));
        const std::uint16_t port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&address)->sin_port
                                                           : reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
        text_ = (family == AF_INET ? "127.0.0.1:" : "[::1]:") + std::to_string(port);
        thread_ = std::thread([this, script = std::move(script)] {
            UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!client.is_open()) return;
            const timeval timeout{5, 0};
            ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
            const int on = 1;
            ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
            script(client.get());
        });
    }
    ~ScriptedProxy() { join(); }
    ScriptedProxy(const ScriptedProxy&) = delete;
    ScriptedProxy& operator=(const ScriptedProxy&) = delete;

    ProxyAddress address() const { return parse_proxy_address(text_); }

    // Waits for the script to end; a proxy nobody connected to stops listening.
    void join() {
        if (!thread_.joinable()) return;
        ::shutdown(listener_.get(), SHUT_RDWR);
        thread_.join();
    }

private:
    UniqueFd listener_;
    std::string text_;
    std::thread thread_;
};

// Polls the handshake's descriptor for the events it wants and advances it on readiness until
// advance() says it has finished; false when that takes more than 5 s.
bool run_handshake(SocksHandshake& handshake) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd watched{handshake.fd(), static_cast<short>(handshake.wanted_events()), 0};
        if (::poll(&watched, 1, 100) > 0 && handshake.advance()) return true;
    }
    return false;
}

// Reads `count` bytes from a non-blocking socket, waiting up to 5 s.
std::string read_available(int fd, std::size_t count) {
    std::string result;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (result.size() < count && std::chrono::steady_clock::now() < deadline) {
        pollfd watched{fd, POLLIN, 0};
        if (::poll(&watched, 1, 100) <= 0) continue;
        char buffer[512];
        const ssize_t got = ::recv(fd, buffer, std::min(sizeof buffer, count - result.size()), 0);
        if (got <= 0) break;
        result.append(buffer, static_cast<std::size_t>(got));
    }
    return result;
}

const SocksAddress example_destination{AddressType::domain, "example.com", 443};
const std::string greeting = bytes({5, 1, 0});
const std::string bound_reply = bytes({5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34});

TEST(SocksHandshakeTest, ConnectsAndLeavesTheFarEndsFirstBytesInTheSocket) {
    std::string received_greeting, received_request, received_after;
    const std::string request = encode_request(SocksCommand::connect, example_destination);
    ScriptedProxy proxy([&](int client) {
        received_greeting = read_exactly(client, 3);
        write_all(client, bytes({5, 0}));
        received_request = read_exactly(client, request.size());
        write_all(client, bound_reply + "SSH-2.0-far-end\r\n");  // one segment: reply and data
        received_after = read_exactly(client, 4);
        wait_for_end_of_stream(client);
    });
    SocksHandshake handshake(proxy.address(), SocksCommand::connect, example_destination);
    ASSERT_TRUE(run_handshake(handshake));
    EXPECT_TRUE(handshake.succeeded());
    EXPECT_EQ(handshake.step(), SocksHandshake::Step::done);
    EXPECT_EQ(handshake.reply(), SocksReply::succeeded);
    EXPECT_FALSE(handshake.has_proxy_refused());
    EXPECT_FALSE(handshake.has_failed_at_request());
    EXPECT_EQ(handshake.bound().type, AddressType::ipv4);
    EXPECT_EQ(handshake.bound().host, "127.0.0.1");
    EXPECT_EQ(handshake.bound().port, 0x1234);
    EXPECT_TRUE(handshake.advance());  // finished stays finished

    UniqueFd socket = handshake.release();
    ASSERT_TRUE(socket.is_open());
    EXPECT_EQ(read_available(socket.get(), 17), "SSH-2.0-far-end\r\n");
    write_all(socket.get(), "ping");
    socket.reset();
    proxy.join();
    EXPECT_EQ(received_greeting, greeting);
    EXPECT_EQ(received_request, request);
    EXPECT_EQ(received_after, "ping");
}

TEST(SocksHandshakeTest, ReadsRepliesThatArriveOneByteAtATime) {
    const std::string ipv6_bound =
        bytes({5, 0, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0x01, 0xbb});
    const SocksAddress destination{AddressType::ipv4, "192.0.2.7", 80};
    ScriptedProxy proxy([&](int client) {
        read_exactly(client, 3);
        for (const char byte : bytes({5, 0})) {
            write_all(client, std::string(1, byte));
            std::this_thread::sleep_for(2ms);
        }
        read_exactly(client, encode_request(SocksCommand::connect, destination).size());
        for (const char byte : ipv6_bound + "x") {
            write_all(client, std::string(1, byte));
            std::this_thread::sleep_for(1ms);
        }
        wait_for_end_of_stream(client);
    });
    SocksHandshake handshake(proxy.address(), SocksCommand::connect, destination);
    ASSERT_TRUE(run_handshake(handshake));
    ASSERT_TRUE(handshake.succeeded()) << handshake.failure();
    EXPECT_EQ(handshake.bound().host, "2001:db8::9");
    EXPECT_EQ(handshake.bound().port, 443);
    UniqueFd socket = handshake.release();
    EXPECT_EQ(read_available(socket.get(), 1), "x");
}

TEST(SocksHandshakeTest, TakesAMethodChoiceAndReplySentTogetherApart) {
    std::string received_request;
    const std::string request = encode_request(SocksCommand::connect, example_destination);
    ScriptedProxy proxy([&](int client) {
        read_exactly(client, 3);
        write_all(client, bytes({5, 0}) + bound_reply + "early");  // before the request is even read
        received_request = read_exactly(client, request.size());
        wait_for_end_of_stream(client);
    });
    SocksHandshake handshake(proxy.address(), SocksCommand::connect, example_destination);
    ASSERT_TRUE(run_handshake(handshake));
    ASSERT_TRUE(handshake.succeeded()) << handshake.failure();
    UniqueFd socket = handshake.release();
    EXPECT_EQ(read_available(socket.get(), 5), "early");
    socket.reset();
    proxy.join();
    EXPECT_EQ(received_request, request);
}

TEST(SocksHandshakeTest, WorksWithAProxyOnIpv6Loopback) {
    std::unique_ptr<ScriptedProxy> proxy;
    try {
        proxy = std::make_unique<ScriptedProxy>(
            [](int client) {
                read_exactly(client, 3);
                write_all(client, bytes({5, 0}));
                read_exactly(client, encode_request(SocksCommand::connect, example_destination).size());
                write_all(client, bound_reply);
                wait_for_end_of_stream(client);
            },
            AF_INET6);
    } catch (const std::runtime_error& error) {
        GTEST_SKIP() << "no IPv6 loopback here: " << error.what();
    }
    SocksHandshake handshake(proxy->address(), SocksCommand::connect, example_destination);
    ASSERT_TRUE(run_handshake(handshake));
    EXPECT_TRUE(handshake.succeeded()) << handshake.failure();
}

TEST(SocksHandshakeTest, AReplyOfConnectionRefusedIsTheProxysRefusal) {
    ScriptedProxy proxy([&](int client) {
        read_exactly(client, 3);
        write_all(client, bytes({5, 0}));
        read_exactly(client, encode_request(SocksCommand::connect, example_destination).size());
        write_all(client, bytes({5, 5, 0, 1, 0, 0, 0, 0, 0, 0}));
        wait_for_end_of_stream(client);
    });
    SocksHandshake handshake(proxy.address(), SocksCommand::connect, example_destination);
    ASSERT_TRUE(run_handshake(handshake));
    EXPECT_FALSE(handshake.succeeded());
    EXPECT_EQ(handshake.step(), SocksHandshake::Step::failed);
    EXPECT_TRUE(handshake.has_proxy_refused());
    EXPECT_EQ(handshake.reply(), SocksReply::connection_refused);
    EXPECT_TRUE(handshake.has_failed_at_request());
    EXPECT_NE(handshake.failure().find("connection refused"), std::string::npos) << handshake.failure();
}

TEST(SocksHandshakeTest, FailsWhenTheProxyWantsAuthentication) {
    for (const int method : {2, 0xff}) {
        ScriptedProxy proxy([&](int client) {
            read_exactly(client, 3);
            write_all(client, bytes({5, method}));
            wait_for_end_of_stream(client);
        });
        SocksHandshake handshake(proxy.address(), SocksCommand::connect, example_destination);
        ASSERT_TRUE(run_handshake(handshake));
        EXPECT_EQ(handshake.step(), SocksHandshake::Step::failed) << method;
        EXPECT_FALSE(handshake.has_proxy_refused());
        EXPECT_FALSE(handshake.has_failed_at_request());
        EXPECT_FALSE(handshake.failure().empty());
    }
}

TEST(SocksHandshakeTest, AProxyThatClosesAfterTheRequestFailedAtTheRequest) {
    std::string received_request;
    const std::string request = encode_request(SocksCommand::udp_associate, {});
    ScriptedProxy proxy([&](int client) {
        read_exactly(client, 3);
        write_all(client, bytes({5, 0}));
        received_request = read_exactly(client, request.size());
        // OpenSSH's answer to UDP ASSOCIATE: the connection closes.
    });
    SocksHandshake handshake(proxy.address(), SocksCommand::udp_associate, {});
    ASSERT_TRUE(run_handshake(handshake));
    EXPECT_EQ(handshake.step(), SocksHandshake::Step::failed);
    EXPECT_TRUE(handshake.has_failed_at_request());
    EXPECT_FALSE(handshake.has_proxy_refused());
    EXPECT_FALSE(handshake.failure().empty());
    proxy.join();
    EXPECT_EQ(received_request, request);
}

TEST(SocksHandshakeTest, AProxyThatClosesAtOnceFailedBeforeTheRequest) {
    ScriptedProxy proxy([](int client) { read_exactly(client, 3); });
    SocksHandshake handshake(proxy.address(), SocksCommand::connect, example_destination);
    ASSERT_TRUE(run_handshake(handshake));
    EXPECT_EQ(handshake.step(), SocksHandshake::Step::failed);
    EXPECT_FALSE(handshake.has_failed_at_request());
    EXPECT_FALSE(handshake.has_proxy_refused());
}

TEST(SocksHandshakeTest, AMalformedReplyIsAFailureNotARefusal) {
    ScriptedProxy proxy([&](int client) {
        read_exactly(client, 3);
        write_all(client, bytes({5, 0}));
        read_exactly(client, encode_request(SocksCommand::connect, example_destination).size());
        write_all(client, bytes({5, 0, 1, 1, 0, 0, 0, 0, 0, 0}));  // reserved byte set
        wait_for_end_of_stream(client);
    });
    SocksHandshake handshake(proxy.address(), SocksCommand::connect, example_destination);
    ASSERT_TRUE(run_handshake(handshake));
    EXPECT_EQ(handshake.step(), SocksHandshake::Step::failed);
    EXPECT_FALSE(handshake.has_proxy_refused());
    EXPECT_TRUE(handshake.has_failed_at_request());
}

TEST(SocksHandshakeTest, NobodyListeningIsAFailureBeforeTheRequest) {
    // A port bound but not listening: the connect is refused, and no one else can take the port.
    UniqueFd placeholder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    ASSERT_EQ(::bind(placeholder.get(), reinterpret_cast<sockaddr*>(&address), length), 0);
    ASSERT_EQ(::getsockname(placeholder.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
    const ProxyAddress proxy = parse_proxy_address("127.0.0.1:" + std::to_string(ntohs(address.sin_port)));

    SocksHandshake handshake(proxy, SocksCommand::connect, example_destination);
    ASSERT_TRUE(run_handshake(handshake));
    EXPECT_EQ(handshake.step(), SocksHandshake::Step::failed);
    EXPECT_FALSE(handshake.succeeded());
    EXPECT_FALSE(handshake.has_failed_at_request());
    EXPECT_FALSE(handshake.has_proxy_refused());
    EXPECT_NE(handshake.failure().find("127.0.0.1:"), std::string::npos) << handshake.failure();
}

}  // namespace
}  // namespace psi::proxy
