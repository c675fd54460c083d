#include "connect/notice.hpp"

#include <gtest/gtest.h>

namespace psi::connect {
namespace {

const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1136214245007));

TEST(Notice, MatchesPsiphonsConsoleClientFormat) {
    EXPECT_EQ(format_notice(notice::Tunnels{1}, when),
              R"({"data":{"count":1},"noticeType":"Tunnels","timestamp":"2006-01-02T15:04:05.007Z"})");
    EXPECT_EQ(format_notice(notice::Homepage{"https://example.org/?a=1&b=<2>"}, when),
              R"({"data":{"url":"https://example.org/?a=1\u0026b=\u003c2\u003e"},"noticeType":"Homepage","timestamp":"2006-01-02T15:04:05.007Z"})");
    EXPECT_EQ(format_notice(notice::Exiting{}, when),
              R"({"data":{},"noticeType":"Exiting","timestamp":"2006-01-02T15:04:05.007Z"})");
}

TEST(Notice, EveryNoticeIsReadBackAsWritten) {
    notice::PacketTunnelStats stats{1, 2, 3, 4, 5, 6, 7};
    const Notice notices[] = {notice::ListeningSocksProxyPort{1080}, notice::ListeningHttpProxyPort{8080},
                              notice::Tunnels{0}, notice::ActiveTunnel{"OSSH"}, notice::ConnectedServerRegion{"CA"},
                              notice::ClientRegion{"DE"}, notice::Homepage{"https://psiphon.ca/"},
                              notice::PacketTunnel{notice::PacketTunnel::State::up, "PsiphonTUN"},
                              notice::PacketTunnel{notice::PacketTunnel::State::refused, ""}, stats,
                              notice::Warning{"careful"}, notice::Error{"gone"}, notice::Exiting{},
                              notice::ServerOutcome{"192.0.2.1", "OSSH", true, ""},
                              notice::ServerOutcome{"192.0.2.2", "SSH", false, "timeout"}};
    for (const Notice& written : notices) {
        const std::optional<Notice> read = parse_notice(format_notice(written, when));
        ASSERT_TRUE(read) << format_notice(written, when);
        EXPECT_EQ(read->index(), written.index());
        EXPECT_EQ(format_notice(*read, when), format_notice(written, when));
    }
    EXPECT_EQ(std::get<notice::PacketTunnelStats>(*parse_notice(format_notice(stats, when))), stats);
}

TEST(Notice, AnythingElseIsNoNotice) {
    for (const char* line : {"", "not json", "[1]", R"({"noticeType":"Tunnels"})",
                             R"({"noticeType":"Tunnels","data":{"count":"1"}})",
                             R"({"noticeType":"Tunnels","data":{"count":1.5}})",
                             R"({"noticeType":7,"data":{}})", R"({"noticeType":"Info","data":{"message":"x"}})",
                             R"({"noticeType":"PacketTunnel","data":{"state":"sideways"}})",
                             R"({"noticeType":"ListeningSocksProxyPort","data":{"port":-1}})",
                             R"({"noticeType":"ServerOutcome","data":{"address":"192.0.2.1","protocol":"OSSH","connected":false}})",
                             R"({"noticeType":"ServerOutcome","data":{"address":"192.0.2.1","protocol":"OSSH","connected":1}})"})
        EXPECT_FALSE(parse_notice(line)) << line;
}

}  // namespace
}  // namespace psi::connect
