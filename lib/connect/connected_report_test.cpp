#include "connect/connected_report.hpp"

#include <string>

#include <gtest/gtest.h>

namespace psi::connect {
namespace {

TEST(ConnectedReport, SendsBackOnlyTimestampsAsPsiphonWritesThem) {
    EXPECT_TRUE(is_connected_timestamp("2026-11-23T15:00:00Z"));
    EXPECT_TRUE(is_connected_timestamp("2026-11-23T15:00:00.123456789Z"));
    EXPECT_TRUE(is_connected_timestamp("2026-11-23T15:00:00+01:00"));
    EXPECT_FALSE(is_connected_timestamp(""));
    EXPECT_FALSE(is_connected_timestamp("None"));
    EXPECT_FALSE(is_connected_timestamp("2026-11-23 15:00:00Z"));
    EXPECT_FALSE(is_connected_timestamp("2026-11-23T15:00:00Z\",\"sponsor_id\":\"x"));
    EXPECT_FALSE(is_connected_timestamp("2026-11-23T15:00:00.1234567890123456789012345Z"));
    EXPECT_FALSE(is_connected_timestamp(std::string(10000, '1')));
}

}  // namespace
}  // namespace psi::connect
