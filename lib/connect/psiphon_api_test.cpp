#include <set>
#include "connect/psiphon_api.hpp"

#include <gtest/gtest.h>

#include "connect/notice.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace psi::connect {
namespace {

Config config_of(const std::string& text) { return parse_config(text, "psi.conf"); }

TEST(PsiphonApi, IdentityComesFromTheConfigAndIsChecked) {
    ClientIdentity identity = client_identity(config_of(
        R"({"PropagationChannelId":"FFFFFFFFFFFFFFFF","SponsorId":"FFFFFFFFFFFFFFFF","EgressRegion":"CA"})"));
    EXPECT_EQ(identity.client_version, "1");
    EXPECT_EQ(identity.client_platform, "Linux");
    EXPECT_EQ(identity.egress_region, "CA");
    EXPECT_THROW(client_identity(config_of(R"({"SponsorId":"FFFFFFFFFFFFFFFF"})")), Error);
    EXPECT_THROW(client_identity(config_of(R"({"PropagationChannelId":"FF","SponsorId":"FFFF"})")), Error);
    EXPECT_THROW(client_identity(config_of(
                     R"({"PropagationChannelId":"FF","SponsorId":"FFFFFFFFFFFFFFFF","ClientPlatform":"Linux x"})")),
                 Error);
}

TEST(PsiphonApi, SessionIdsAre32HexDigitsAndFresh) {
    const std::string first = make_session_id(), second = make_session_id();
    EXPECT_EQ(first.size(), 32u);
    EXPECT_EQ(first.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_NE(first, second);
}

TEST(PsiphonApi, PasswordPayloadMatchesWhatPsiphondAccepted) {
    EXPECT_EQ(password_payload("00112233445566778899aabbccddeeff", "secret", "FFFFFFFFFFFFFFFF"),
              R"({"SessionId":"00112233445566778899aabbccddeeff","SshPassword":"secret","SponsorId":"FFFFFFFFFFFFFFFF"})");
    EXPECT_EQ(password_payload("00112233445566778899aabbccddeeff", "p\"w", "short"),
              R"({"SessionId":"00112233445566778899aabbccddeeff","SshPassword":"p\"w"})");
}

TEST(PsiphonApi, HandshakeCarriesEveryRequiredParameterAsStrings) {
    ClientIdentity identity{"FFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFF", "1", "Linux", ""};
    const std::string session = "00112233445566778899aabbccddeeff";
    DialReport dial;
    dial.relay_protocol = "OSSH";
    dial.ssh_client_version = "SSH-2.0-OpenSSH_8.4";
    dial.dial_port = 443;
    dial.dial_duration_ms = 42;
    dial.candidate_number = 2;
    dial.candidate_count = 5;
    dial.established_tunnels_count = 1;
    dial.server_entry_count = 3;
    dial.upstream_ossh_padding = 7;
    dial.server_entry_source = "REMOTE";
    dial.server_entry_timestamp = "2026-12-07T12:00:00Z";
    json::Value request = json::parse(handshake_request(identity, dial, "s3cret", session));
    for (const char* key : {"propagation_channel_id", "sponsor_id", "client_version", "client_platform", "relay_protocol",
                            "server_secret", "client_session_id", "session_id", "client_build_rev", "network_type",
                            "applied_tactics_tag", "padding", "pad_response", "ssh_client_version", "dial_port_number",
                            "dial_duration", "candidate_number", "unique_candidate_estimate", "candidates_moved_to_front",
                            "established_tunnels_count", "server_entry_count", "upstream_ossh_padding",
                            "server_entry_source", "server_entry_timestamp"})
        ASSERT_TRUE(request.find(key) && request.find(key)->is_string()) << key;
    EXPECT_EQ(request.find("relay_protocol")->as_string(), "OSSH");
    EXPECT_EQ(request.find("egress_region"), nullptr);
    EXPECT_EQ(request.find("server_entry_region"), nullptr);  // "" is left out
    EXPECT_EQ(request.find("server_secret")->as_string(), "s3cret");
    EXPECT_EQ(request.find("client_session_id")->as_string(), session);
    EXPECT_EQ(request.find("dial_port_number")->as_string(), "443");
    EXPECT_EQ(request.find("dial_duration")->as_string(), "42");
    EXPECT_EQ(request.find("candidate_number")->as_string(), "2");
    EXPECT_EQ(request.find("unique_candidate_estimate")->as_string(), "5");
    EXPECT_EQ(request.find("established_tunnels_count")->as_string(), "1");
    EXPECT_EQ(request.find("upstream_ossh_padding")->as_string(), "7");
    const std::string padding = request.find("padding")->as_string();
    EXPECT_LE(padding.size(), 1024u);
    EXPECT_EQ(padding.find_first_not_of(' '), std::string::npos);
    EXPECT_LE(std::stoi(request.find("pad_response")->as_string()), 1024);
    identity.egress_region = "DE";
    dial.relay_protocol = "SSH";
    dial.upstream_ossh_padding.reset();
    request = json::parse(handshake_request(identity, dial, "s3cret", session));
    EXPECT_EQ(request.find("egress_region")->as_string(), "DE");
    EXPECT_EQ(request.find("upstream_ossh_padding"), nullptr);
}

TEST(PsiphonApi, PaddingVariesBetweenRequests) {
    ClientIdentity identity{"FFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFF", "1", "Linux", ""};
    std::set<std::size_t> sizes;
    for (int i = 0; i < 20; ++i)
        sizes.insert(json::parse(handshake_request(identity, DialReport{}, "", "")).find("padding")->as_string().size());
    EXPECT_GT(sizes.size(), 10u);
}

TEST(PsiphonApi, TimestampsTruncatedToTheHour) {
    EXPECT_EQ(truncate_timestamp_to_hour("2026-12-07T12:34:56Z"), "2026-12-07T12:00:00Z");
    EXPECT_EQ(truncate_timestamp_to_hour("2026-12-07T12:34:56.123456Z"), "2026-12-07T12:00:00Z");
    EXPECT_EQ(truncate_timestamp_to_hour("2026-12-07T12:34:56+01:00"), "");
    EXPECT_EQ(truncate_timestamp_to_hour("yesterday"), "");
    EXPECT_EQ(truncate_timestamp_to_hour(""), "");
}

TEST(PsiphonApi, HandshakeReplyGivesHomepagesServersAndRegion) {
    HandshakeResponse response = parse_handshake_response(
        R"({"homepages":["https://example.org/a","https://example.org/b"],"encoded_server_list":["30"],)"
        R"("client_region":"US","server_timestamp":"2026-11-23T01:00:00Z","page_view_regexes":[],"unknown":{"x":1}})");
    EXPECT_EQ(response.homepages.size(), 2u);
    EXPECT_EQ(response.encoded_server_list, std::vector<std::string>{"30"});
    EXPECT_EQ(response.client_region, "US");
    EXPECT_THROW(parse_handshake_response("not json"), Error);
    EXPECT_THROW(parse_handshake_response("[]"), Error);
    EXPECT_TRUE(parse_handshake_response("{}").homepages.empty());
}

TEST(PsiphonApi, ConnectedRequestAndTimestamp) {
    ClientIdentity identity{"FF", "FFFFFFFFFFFFFFFF", "1", "Linux", ""};
    const json::Value request = json::parse(connected_request(identity, "OSSH", "", 1234));
    EXPECT_EQ(request.find("last_connected")->as_string(), "None");
    EXPECT_EQ(request.find("establishment_duration")->as_string(), "1234");
    EXPECT_EQ(parse_connected_timestamp(R"({"connected_timestamp":"2026-11-23T01:00:00Z"})"), "2026-11-23T01:00:00Z");
}

}  // namespace
}  // namespace psi::connect
