#include "engine/nat_table.hpp"

#include <chrono>
#include <cstdint>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"

namespace psi::engine {
namespace {

using namespace std::chrono_literals;
using Clock = NatTable::Clock;

const Clock::time_point start = Clock::time_point{} + 1000h;

// Flow number `n`: an app port and a destination that differ for every n below 2^32.
Flow flow(std::uint32_t n) {
    Flow result;
    result.application.address.bytes = {10, 200, 3, 1};
    result.application.port = static_cast<std::uint16_t>(n & 0xffff);
    result.destination.address.bytes = {93, 184, static_cast<std::uint8_t>(n >> 24), static_cast<std::uint8_t>(n >> 16)};
    result.destination.port = 443;
    return result;
}

TEST(NatTable, AllocatesEveryPortOfTheRangeOnceThenNothing) {
    NatTable table(20000, 20003, 65s);
    std::set<std::uint16_t> ports;
    for (std::uint32_t n = 0; n < 4; ++n) {
        const auto port = table.allocate(flow(n), start);
        ASSERT_TRUE(port);
        EXPECT_GE(*port, 20000);
        EXPECT_LE(*port, 20003);
        ports.insert(*port);
    }
    EXPECT_EQ(ports.size(), 4u);
    EXPECT_EQ(table.active(), 4u);
    EXPECT_EQ(table.allocate(flow(4), start), std::nullopt);
    EXPECT_EQ(table.allocate(flow(5), start + 1000h), std::nullopt);
    EXPECT_EQ(table.active(), 4u);
}

TEST(NatTable, AFlowThatHasAPortKeepsIt) {
    NatTable table(20000, 20001, 65s);
    const auto first = table.allocate(flow(1), start);
    const auto second = table.allocate(flow(2), start);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(table.allocate(flow(1), start + 1s), first);  // even with the range exhausted
    EXPECT_EQ(table.allocate(flow(2), start + 2s), second);
    EXPECT_EQ(table.active(), 2u);
}

TEST(NatTable, LooksUpBothWays) {
    NatTable table(1024, 65535, 65s);
    const auto port = table.allocate(flow(7), start);
    ASSERT_TRUE(port);
    EXPECT_EQ(table.port_of(flow(7)), port);
    ASSERT_NE(table.flow_of(*port), nullptr);
    EXPECT_EQ(*table.flow_of(*port), flow(7));
    EXPECT_EQ(table.port_of(flow(8)), std::nullopt);
    EXPECT_EQ(table.flow_of(static_cast<std::uint16_t>(*port + 1)), nullptr);
    EXPECT_EQ(table.flow_of(0), nullptr);

    table.release(*port, start + 1s);
    EXPECT_EQ(table.port_of(flow(7)), std::nullopt);
    EXPECT_EQ(table.flow_of(*port), nullptr);
    EXPECT_EQ(table.active(), 0u);
    EXPECT_EQ(table.quarantined(), 1u);
}

TEST(NatTable, AReleasedPortWaitsOutTheQuarantine) {
    NatTable table(30000, 30000, 65s);
    const auto port = table.allocate(flow(1), start);
    ASSERT_EQ(port, 30000);
    const auto released = start + 10s;
    table.release(30000, released);
    EXPECT_EQ(table.allocate(flow(2), released), std::nullopt);
    EXPECT_EQ(table.allocate(flow(2), released + 64s), std::nullopt);
    EXPECT_EQ(table.allocate(flow(2), released + 65s - 1ns), std::nullopt);
    EXPECT_EQ(table.quarantined(), 1u);
    EXPECT_EQ(table.allocate(flow(2), released + 65s), 30000);
    EXPECT_EQ(table.quarantined(), 0u);
    EXPECT_EQ(*table.flow_of(30000), flow(2));
}

TEST(NatTable, QuarantinedPortsComeBackInTheOrderTheyWereReleased) {
    NatTable table(40000, 40002, 60s);
    for (std::uint32_t n = 0; n < 3; ++n) ASSERT_EQ(table.allocate(flow(n), start), 40000 + n);
    table.release(40001, start + 1s);
    table.release(40000, start + 2s);
    table.release(40002, start + 3s);
    EXPECT_EQ(table.allocate(flow(10), start + 61s), 40001);
    EXPECT_EQ(table.allocate(flow(11), start + 61s), std::nullopt);  // 40000 is free at 62 s
    EXPECT_EQ(table.allocate(flow(11), start + 62s), 40000);
    EXPECT_EQ(table.allocate(flow(12), start + 100s), 40002);
}

TEST(NatTable, AFreePortIsNotReusedWhileOthersHaveBeenFreeLonger) {
    // Even without a quarantine, the port released last goes to the back of the line.
    NatTable table(1000, 1003, 0s);
    ASSERT_EQ(table.allocate(flow(1), start), 1000);
    table.release(1000, start);
    EXPECT_EQ(table.allocate(flow(2), start), 1001);
    EXPECT_EQ(table.allocate(flow(3), start), 1002);
    EXPECT_EQ(table.allocate(flow(4), start), 1003);
    EXPECT_EQ(table.allocate(flow(5), start), 1000);
}

TEST(NatTable, ReleasingAPortThatIsNotInUseDoesNothing) {
    NatTable table(5000, 5001, 65s);
    table.release(5000, start);  // never allocated
    table.release(6000, start);  // outside the range
    table.release(0, start);
    EXPECT_EQ(table.quarantined(), 0u);
    EXPECT_EQ(table.allocate(flow(1), start), 5000);

    table.release(5000, start + 1s);
    table.release(5000, start + 2s);  // already released: the quarantine does not start again
    EXPECT_EQ(table.quarantined(), 1u);
    EXPECT_EQ(table.allocate(flow(2), start + 2s), 5001);
    EXPECT_EQ(table.allocate(flow(3), start + 66s), 5000);
}

TEST(NatTable, CoversTheWholePortRange) {
    NatTable table(1, 65535, 65s);
    std::vector<bool> seen(65536, false);
    for (std::uint32_t n = 0; n < 65535; ++n) {
        const auto port = table.allocate(flow(n), start);
        ASSERT_TRUE(port) << n;
        ASSERT_FALSE(seen[*port]) << *port;
        seen[*port] = true;
    }
    EXPECT_FALSE(seen[0]);
    EXPECT_EQ(table.allocate(flow(70000), start), std::nullopt);
}

TEST(NatTable, RefusesAnEmptyOrZeroRange) {
    EXPECT_THROW(NatTable(2000, 1999, 65s), Error);
    EXPECT_THROW(NatTable(0, 10, 65s), Error);
    EXPECT_THROW(NatTable(10, 20, -1s), Error);
    EXPECT_NO_THROW(NatTable(65535, 65535, 0s));
}

// 100,000 flows through 64,512 ports at 500 new flows a second: no port is ever handed out
// while in use or within 65 s of its release, and the whole run is quick.
TEST(NatTable, ManyFlowsAreFastAndNeverMeetAQuarantinedPort) {
    const auto quarantine = 65s;
    NatTable table(1024, 65535, quarantine);
    std::vector<Clock::time_point> released_at(65536, Clock::time_point::min());
    std::vector<bool> in_use(65536, false);
    std::vector<std::uint16_t> open;  // oldest first
    std::size_t oldest = 0;
    std::size_t reused = 0;

    const auto began = std::chrono::steady_clock::now();
    for (std::uint32_t n = 0; n < 100000; ++n) {
        const auto now = start + std::chrono::milliseconds(2 * n);
        const auto port = table.allocate(flow(n), now);
        ASSERT_TRUE(port) << n;
        ASSERT_FALSE(in_use[*port]) << *port;
        ASSERT_TRUE(released_at[*port] == Clock::time_point::min() || now - released_at[*port] >= quarantine)
            << "port " << *port << " reused too early";
        if (released_at[*port] != Clock::time_point::min()) ++reused;
        in_use[*port] = true;
        open.push_back(*port);
        if (open.size() - oldest > 1000) {  // flows live for 2 s
            const std::uint16_t done = open[oldest++];
            table.release(done, now);
            in_use[done] = false;
            released_at[done] = now;
        }
    }
    const auto elapsed = std::chrono::steady_clock::now() - began;
    EXPECT_LT(elapsed, 1s);
    EXPECT_EQ(table.active(), 1000u);
    EXPECT_GE(reused, 100000u - (65535u - 1024u + 1u));
    EXPECT_LE(table.quarantined(), 32501u);
}

}  // namespace
}  // namespace psi::engine
