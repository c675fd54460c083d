#include "proxy/socks5.hpp"

#include <gtest/gtest.h>

#include <initializer_list>

#include "core/error.hpp"
#include "testing/test_support.hpp"

namespace psi::proxy {
namespace {

using psi::testing::bytes;

const std::string ipv4_connect = bytes({5, 1, 0, 1, 192, 0, 2, 7, 0x01, 0xbb});
const std::string ipv6_connect =
    bytes({5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80});
const std::string domain_connect = bytes({5, 1, 0, 3, 11}) + "example.com" + bytes({0x1f, 0x90});

TEST(SocksGreeting, AcceptsNoAuthenticationAmongOthers) {
    const auto parsed = parse_greeting(bytes({5, 3, 2, 0, 1}));
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, 5u);
    EXPECT_TRUE(parsed.message.offers_no_authentication);
}

TEST(SocksGreeting, NotesWhenNoAuthenticationIsNotOffered) {
    const auto parsed = parse_greeting(bytes({5, 2, 1, 2}));
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_FALSE(parsed.message.offers_no_authentication);
}

TEST(SocksGreeting, NeedsMoreAtEveryByteBoundaryAndConsumesExactly) {
    const std::string greeting = bytes({5, 2, 2, 0});
    for (std::size_t size = 0; size < greeting.size(); ++size)
        EXPECT_EQ(parse_greeting(greeting.substr(0, size)).status, ParseStatus::need_more) << size;
    const auto parsed = parse_greeting(greeting + bytes({5, 1, 0}));
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, greeting.size());
}

TEST(SocksGreeting, RejectsBadVersionAndNoMethods) {
    EXPECT_EQ(parse_greeting(bytes({4})).status, ParseStatus::malformed);
    EXPECT_EQ(parse_greeting(bytes({4, 1, 0})).status, ParseStatus::malformed);
    EXPECT_EQ(parse_greeting("GET / HTTP/1.1\r\n").status, ParseStatus::malformed);
    EXPECT_EQ(parse_greeting(bytes({5, 0})).status, ParseStatus::malformed);
    EXPECT_EQ(parse_greeting(bytes({5, 0, 0})).status, ParseStatus::malformed);
}

TEST(SocksGreeting, RepliesWithTheChosenMethod) {
    EXPECT_EQ(greeting_reply(true), bytes({5, 0}));
    EXPECT_EQ(greeting_reply(false), bytes({5, 0xff}));
}

TEST(SocksRequest, ParsesIpv4Connect) {
    const auto parsed = parse_request(ipv4_connect);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, ipv4_connect.size());
    EXPECT_EQ(parsed.message.command, SocksCommand::connect);
    EXPECT_EQ(parsed.message.destination.type, AddressType::ipv4);
    EXPECT_EQ(parsed.message.destination.host, "192.0.2.7");
    EXPECT_EQ(parsed.message.destination.port, 443);
}

TEST(SocksRequest, ParsesIpv6ConnectAsCanonicalText) {
    const auto parsed = parse_request(ipv6_connect);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, ipv6_connect.size());
    EXPECT_EQ(parsed.message.destination.type, AddressType::ipv6);
    EXPECT_EQ(parsed.message.destination.host, "2001:db8::1");
    EXPECT_EQ(parsed.message.destination.port, 80);

    const auto mapped = parse_request(bytes({5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1, 0, 1}));
    ASSERT_EQ(mapped.status, ParseStatus::complete);
    EXPECT_EQ(mapped.message.destination.host, "::ffff:10.0.0.1");
}

TEST(SocksRequest, ParsesDomainConnectAsSent) {
    const auto parsed = parse_request(domain_connect);
    ASSERT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.consumed, domain_connect.size());
    EXPECT_EQ(parsed.message.destination.type, AddressType::domain);
    EXPECT_EQ(parsed.message.destination.host, "example.com");
    EXPECT_EQ(parsed.message.destination.port, 8080);
}

TEST(SocksRequest, ParsesUdpAssociateAndBind) {
    auto request = ipv4_connect;
    request[1] = 3;
    EXPECT_EQ(parse_request(request).message.command, SocksCommand::udp_associate);
    request[1] = 2;  // BIND parses; refusing it (reply 7) is the server's choice
    const auto parsed = parse_request(request);
    EXPECT_EQ(parsed.status, ParseStatus::complete);
    EXPECT_EQ(parsed.message.command, SocksCommand::bind);
}

TEST(SocksRequest, AcceptsDomainsOfOneAnd255Bytes) {
    const auto shortest = parse_request(bytes({5, 1, 0, 3, 1, 'a', 0, 1}));
    ASSERT_EQ(shortest.status, ParseStatus::complete);
    EXPECT_EQ(shortest.message.destination.host, "a");
    const std::string name(255, 'x');
    const auto longest = parse_request(bytes({5, 1, 0, 3, 255}) + name + bytes({0, 1}));
    ASSERT_EQ(longest.status, ParseStatus::complete);
    EXPECT_EQ(longest.message.destination.host, name);
}

TEST(SocksRequest, NeedsMoreAtEveryByteBoundary) {
    for (const std::string& request : {ipv4_connect, ipv6_connect, domain_connect})
        for (std::size_t size = 0; size < request.size(); ++size)
            EXPECT_EQ(parse_request(request.substr(0, size)).status, ParseStatus::need_more) << size;
}

TEST(SocksRequest, ConsumesExactlyTheRequestWhenBytesFollow) {
    for (const std::string& request : {ipv4_connect, ipv6_connect, domain_connect}) {
        const auto parsed = parse_request(request + "\x16\x03\x01 early data");
        ASSERT_EQ(parsed.status, ParseStatus::complete);
        EXPECT_EQ(parsed.consumed, request.size());
    }
}

TEST(SocksRequest, RejectsBadVersionAndReservedByte) {
    auto request = ipv4_connect;
    request[0] = 4;
    EXPECT_EQ(parse_request(request).status, ParseStatus::malformed);
    EXPECT_EQ(parse_request(request.substr(0, 1)).status, ParseStatus::malformed);
    EXPECT_EQ(parse_request(request).error, SocksReply::general_failure);
    request = ipv4_connect;
    request[2] = 1;
    EXPECT_EQ(parse_request(request).status, ParseStatus::malformed);
    EXPECT_EQ(parse_request(request.substr(0, 3)).status, ParseStatus::malformed);
}

TEST(SocksRequest, RejectsUnknownCommandWithReply7) {
    for (int command : {0, 4, 0xff}) {
        auto request = ipv4_connect;
        request[1] = static_cast<char>(command);
        const auto parsed = parse_request(request);
        EXPECT_EQ(parsed.status, ParseStatus::malformed) << command;
        EXPECT_EQ(parsed.error, SocksReply::command_not_supported) << command;
        EXPECT_EQ(parse_request(request.substr(0, 2)).error, SocksReply::command_not_supported);
    }
}

TEST(SocksRequest, RejectsUnknownAddressTypeWithReply8) {
    for (int type : {0, 2, 5, 0xff}) {
        const auto parsed = parse_request(bytes({5, 1, 0, type, 1, 2, 3, 4, 0, 80}));
        EXPECT_EQ(parsed.status, ParseStatus::malformed) << type;
        EXPECT_EQ(parsed.error, SocksReply::address_type_not_supported) << type;
    }
}

TEST(SocksRequest, RejectsEmptyDomainAndControlCharacters) {
    EXPECT_EQ(parse_request(bytes({5, 1, 0, 3, 0})).status, ParseStatus::malformed);
    EXPECT_EQ(parse_request(bytes({5, 1, 0, 3, 0, 0, 80})).status, ParseStatus::malformed);
    for (int control : {0x00, 0x01, 0x0a, 0x0d, 0x1f, 0x7f}) {
        const auto parsed = parse_request(bytes({5, 1, 0, 3, 3, 'a', control, 'b', 0, 80}));
        EXPECT_EQ(parsed.status, ParseStatus::malformed) << control;
        EXPECT_EQ(parsed.error, SocksReply::general_failure) << control;
    }
}

TEST(SocksRequestReply, EncodesZeroBoundAddressByDefault) {
    EXPECT_EQ(request_reply(SocksReply::succeeded), bytes({5, 0, 0, 1, 0, 0, 0, 0, 0, 0}));
    EXPECT_EQ(request_reply(SocksReply::host_unreachable), bytes({5, 4, 0, 1, 0, 0, 0, 0, 0, 0}));
    EXPECT_EQ(encode_address({AddressType::ipv6, "", 0}), bytes({4}) + std::string(18, '\0'));
}

TEST(SocksRequestReply, EncodesEachBoundAddressType) {
    EXPECT_EQ(request_reply(SocksReply::succeeded, {AddressType::ipv4, "127.0.0.1", 1080}),
              bytes({5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38}));
    EXPECT_EQ(request_reply(SocksReply::succeeded, {AddressType::ipv6, "::1", 1}),
              bytes({5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1}));
    EXPECT_EQ(request_reply(SocksReply::not_allowed, {AddressType::domain, "ab", 2}),
              bytes({5, 2, 0, 3, 2, 'a', 'b', 0, 2}));
}

TEST(SocksRequestReply, RefusesToEncodeAddressesThatAreNot) {
    EXPECT_THROW(encode_address({AddressType::ipv4, "::1", 1}), Error);
    EXPECT_THROW(encode_address({AddressType::ipv4, "1.2.3", 1}), Error);
    EXPECT_THROW(encode_address({AddressType::ipv6, "1.2.3.4", 1}), Error);
    EXPECT_THROW(encode_address({AddressType::domain, "", 1}), Error);
    EXPECT_THROW(encode_address({AddressType::domain, std::string(256, 'a'), 1}), Error);
    EXPECT_THROW(encode_address({AddressType::domain, std::string("a\0b", 3), 1}), Error);
    EXPECT_THROW(encode_address({static_cast<AddressType>(2), "a", 1}), Error);
}

TEST(SocksUdpDatagram, ParsesEachAddressType) {
    const auto ipv4 = parse_udp_datagram(bytes({0, 0, 0, 1, 8, 8, 8, 8, 0, 53}) + "query");
    ASSERT_TRUE(ipv4);
    EXPECT_EQ(ipv4->destination.host, "8.8.8.8");
    EXPECT_EQ(ipv4->destination.port, 53);
    EXPECT_EQ(ipv4->payload, "query");

    const auto ipv6 = parse_udp_datagram(std::string(3, '\0') + ipv6_connect.substr(3) + "x");
    ASSERT_TRUE(ipv6);
    EXPECT_EQ(ipv6->destination.host, "2001:db8::1");
    EXPECT_EQ(ipv6->payload, "x");

    const auto domain = parse_udp_datagram(std::string(3, '\0') + domain_connect.substr(3));
    ASSERT_TRUE(domain);
    EXPECT_EQ(domain->destination.host, "example.com");
    EXPECT_EQ(domain->payload, "");
}

TEST(SocksUdpDatagram, RefusesFragmentsReservedBytesAndTruncation) {
    const std::string datagram = bytes({0, 0, 0, 1, 8, 8, 8, 8, 0, 53});
    EXPECT_TRUE(parse_udp_datagram(datagram));
    for (int fragment : {1, 0x7f, 0x80, 0xff}) {
        auto fragmented = datagram;
        fragmented[2] = static_cast<char>(fragment);
        EXPECT_FALSE(parse_udp_datagram(fragmented + "data")) << fragment;
    }
    EXPECT_FALSE(parse_udp_datagram(bytes({0, 1, 0, 1, 8, 8, 8, 8, 0, 53})));
    EXPECT_FALSE(parse_udp_datagram(bytes({1, 0, 0, 1, 8, 8, 8, 8, 0, 53})));
    EXPECT_FALSE(parse_udp_datagram(bytes({0, 0, 0, 2, 8, 8, 8, 8, 0, 53})));
    EXPECT_FALSE(parse_udp_datagram(bytes({0, 0, 0, 3, 0, 0, 53})));
    for (std::size_t size = 0; size < datagram.size(); ++size)
        EXPECT_FALSE(parse_udp_datagram(datagram.substr(0, size))) << size;
}

TEST(SocksUdpDatagram, RoundTripsThroughEncode) {
    const UdpDatagram datagrams[] = {
        {{AddressType::ipv4, "10.1.2.3", 53}, std::string("\x12\x34\0\x01", 4)},
        {{AddressType::ipv6, "fe80::1:2", 5353}, "payload"},
        {{AddressType::domain, "dns.example", 65535}, ""},
    };
    for (const UdpDatagram& datagram : datagrams) {
        const std::string encoded = encode_udp_datagram(datagram);
        const auto parsed = parse_udp_datagram(encoded);
        ASSERT_TRUE(parsed) << datagram.destination.host;
        EXPECT_EQ(parsed->destination.type, datagram.destination.type);
        EXPECT_EQ(parsed->destination.host, datagram.destination.host);
        EXPECT_EQ(parsed->destination.port, datagram.destination.port);
        EXPECT_EQ(parsed->payload, datagram.payload);
        EXPECT_EQ(encode_udp_datagram(*parsed), encoded);
    }
    EXPECT_EQ(encode_udp_datagram(datagrams[0]), bytes({0, 0, 0, 1, 10, 1, 2, 3, 0, 53, 0x12, 0x34, 0, 1}));
}

}  // namespace
}  // namespace psi::proxy
