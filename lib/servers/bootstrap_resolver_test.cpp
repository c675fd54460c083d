#include "servers/bootstrap_resolver.hpp"

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace psi::servers {
namespace {

std::string bytes(std::initializer_list<int> values) {
    std::string text;
    for (int value : values) text.push_back(static_cast<char>(value));
    return text;
}

const std::string question_lists = bytes({5, 'l', 'i', 's', 't', 's', 3, 'p', 's', 'i', 4, 't', 'e', 's', 't', 0});

// A reply to (0x1234, lists.psi.test, type): header with `flags` and `answers`, the question,
// then `records` as given.
std::string reply(int flags, int answers, std::uint16_t type, const std::string& records,
                  const std::string& question = question_lists, int id = 0x1234) {
    return bytes({id >> 8, id & 0xff, flags >> 8, flags & 0xff, 0, 1, 0, answers, 0, 0, 0, 0}) + question +
           bytes({0, type, 0, 1}) + records;
}

// A record named by a pointer to the question (offset 12), of `type`, with `data`.
std::string record(std::uint16_t type, const std::string& data) {
    return bytes({0xc0, 12, type >> 8, type & 0xff, 0, 1, 0, 0, 0x0e, 0x10, 0, static_cast<int>(data.size())}) + data;
}

TEST(BootstrapResolver, AQueryIsTheHeaderWithRecursionDesiredAndOneQuestion) {
    EXPECT_EQ(build_dns_query(0x1234, "lists.psi.test", dns_type_a),
              bytes({0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}) + question_lists + bytes({0, 1, 0, 1}));
    EXPECT_EQ(build_dns_query(0x1234, "lists.psi.test.", dns_type_aaaa),
              bytes({0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}) + question_lists + bytes({0, 28, 0, 1}));
}

TEST(BootstrapResolver, NamesDnsCannotCarryAreRefusedBeforeAnythingIsSent) {
    for (const std::string& name : std::vector<std::string>{"", ".", "a..test", std::string(64, 'a') + ".test", std::string(254, 'a')})
        EXPECT_THROW(build_dns_query(1, name, dns_type_a), Error) << name;
    EXPECT_THROW(resolve_at("a..test", {"192.0.2.1"}), Error);
    EXPECT_NO_THROW(build_dns_query(1, std::string(63, 'a') + ".test", dns_type_a));
}

TEST(BootstrapResolver, AddressesAreReadPastACnameAndCompressedNames) {
    const std::string cname = record(5, bytes({3, 'c', 'd', 'n', 0xc0, 12}));
    const std::string a = record(dns_type_a, bytes({198, 51, 100, 10})) + record(dns_type_a, bytes({198, 51, 100, 11}));
    DnsReply parsed = parse_dns_reply(reply(0x8180, 3, dns_type_a, cname + a), 0x1234, "Lists.PSI.test", dns_type_a);
    EXPECT_EQ(parsed.answer, DnsAnswer::addresses);
    EXPECT_EQ(parsed.addresses, (std::vector<std::string>{"198.51.100.10", "198.51.100.11"}));

    const std::string aaaa = record(dns_type_aaaa, bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    parsed = parse_dns_reply(reply(0x8180, 1, dns_type_aaaa, aaaa), 0x1234, "lists.psi.test", dns_type_aaaa);
    EXPECT_EQ(parsed.addresses, std::vector<std::string>{"2001:db8::1"});
}

TEST(BootstrapResolver, AnAddressOfTheWrongLengthIsNotAnAddress) {
    const DnsReply parsed = parse_dns_reply(reply(0x8180, 1, dns_type_a, record(dns_type_a, bytes({10, 0, 0}))), 0x1234,
                                            "lists.psi.test", dns_type_a);
    EXPECT_EQ(parsed.answer, DnsAnswer::addresses);
    EXPECT_TRUE(parsed.addresses.empty());
}

TEST(BootstrapResolver, WhatIsNotTheAnswerToThisQueryIsNotOurs) {
    const std::string a = record(dns_type_a, bytes({198, 51, 100, 10}));
    const std::string other = bytes({4, 'l', 'e', 'a', 'k', 3, 'p', 's', 'i', 4, 't', 'e', 's', 't', 0});
    EXPECT_EQ(parse_dns_reply(reply(0x8180, 1, dns_type_a, a, question_lists, 0x4321), 0x1234, "lists.psi.test", dns_type_a)
                  .answer,
              DnsAnswer::not_ours);
    EXPECT_EQ(parse_dns_reply(reply(0x8180, 1, dns_type_a, a, other), 0x1234, "lists.psi.test", dns_type_a).answer,
              DnsAnswer::not_ours);
    EXPECT_EQ(parse_dns_reply(reply(0x0100, 1, dns_type_a, a), 0x1234, "lists.psi.test", dns_type_a).answer,
              DnsAnswer::not_ours);  // a query, not a response
    EXPECT_EQ(parse_dns_reply(reply(0x8180, 1, dns_type_a, a), 0x1234, "lists.psi.test", dns_type_aaaa).answer,
              DnsAnswer::not_ours);
    EXPECT_EQ(parse_dns_reply(bytes({0x12, 0x34, 0x81}), 0x1234, "lists.psi.test", dns_type_a).answer,
              DnsAnswer::not_ours);
}

TEST(BootstrapResolver, ErrorCodesAndTruncatedAnswersAreFailures) {
    EXPECT_EQ(parse_dns_reply(reply(0x8183, 0, dns_type_a, ""), 0x1234, "lists.psi.test", dns_type_a).answer,
              DnsAnswer::no_such_name);
    EXPECT_EQ(parse_dns_reply(reply(0x8182, 0, dns_type_a, ""), 0x1234, "lists.psi.test", dns_type_a).answer,
              DnsAnswer::failed);
    const std::string a = record(dns_type_a, bytes({198, 51, 100, 10}));
    EXPECT_EQ(parse_dns_reply(reply(0x8180, 2, dns_type_a, a), 0x1234, "lists.psi.test", dns_type_a).answer,
              DnsAnswer::failed);  // two records announced, one sent
    EXPECT_EQ(parse_dns_reply(reply(0x8180, 1, dns_type_a, a.substr(0, a.size() - 1)), 0x1234, "lists.psi.test",
                              dns_type_a)
                  .answer,
              DnsAnswer::failed);
}

TEST(BootstrapResolver, AResolverThatIsNotAnAddressIsAUsageError) {
    try {
        resolve_at("lists.psi.test", {"resolver.example"});
        FAIL() << "resolved";
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "--resolver resolver.example: not an IP address");
        EXPECT_EQ(error.exit_code(), exit_status::usage);
    }
}

}  // namespace
}  // namespace psi::servers
