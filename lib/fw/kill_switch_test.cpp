// Runs against the real kernel, in a network namespace of its own (needs root).
#include "fw/kill_switch.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "fw/nft_context.hpp"
#include "fw/ruleset.hpp"

namespace psi::fw {
namespace {

class KillSwitchInNamespace : public ::testing::Test {
protected:
    // The unit tests share one process: go back to the original namespace afterwards, so the
    // tests that follow keep their loopback.
    static void SetUpTestSuite() {
        ASSERT_EQ(::geteuid(), 0u) << "these tests load nftables rules: run them as root";
        original_namespace_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        ASSERT_GE(original_namespace_, 0) << "cannot open the network namespace";
        ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "cannot create a network namespace";
    }
    static void TearDownTestSuite() {
        if (original_namespace_ < 0) return;
        EXPECT_EQ(::setns(original_namespace_, CLONE_NEWNET), 0) << "cannot return to the network namespace";
        ::close(original_namespace_);
        original_namespace_ = -1;
    }
    static inline int original_namespace_ = -1;
    void SetUp() override {
        NftContext().run(render_delete_script());
        config_.tunnel_user = "1500";
    }
    Config config_;
};

TEST_F(KillSwitchInNamespace, UpLoadsTheTableAndUpTwiceIsANoOp) {
    KillSwitch kill_switch(config_);
    EXPECT_FALSE(kill_switch.status().is_loaded);
    EXPECT_EQ(kill_switch.apply(Mode::tunnel), Change::applied);
    EXPECT_EQ(kill_switch.apply(Mode::tunnel), Change::unchanged);
    KillSwitchStatus status = kill_switch.status();
    EXPECT_TRUE(status.is_intact());
    EXPECT_EQ(status.mode, Mode::tunnel);
}

TEST_F(KillSwitchInNamespace, BootPolicyIsRecognisedAsBlocked) {
    KillSwitch kill_switch(config_);
    kill_switch.apply(Mode::blocked);
    EXPECT_EQ(kill_switch.status().mode, Mode::blocked);
    EXPECT_EQ(kill_switch.apply(Mode::tunnel), Change::applied);
    EXPECT_EQ(kill_switch.status().mode, Mode::tunnel);
}

TEST_F(KillSwitchInNamespace, AFailedTransactionLeavesThePreviousTable) {
    KillSwitch kill_switch(config_);
    kill_switch.apply(Mode::tunnel);
    Table broken = build_table(make_policy(config_, Mode::tunnel));
    broken.chains.back().rules.push_back({"broken", "jump no_such_chain"});
    EXPECT_THROW(NftContext().run(render_replace_script(broken)), Error);
    EXPECT_TRUE(kill_switch.status().is_intact());
}

TEST_F(KillSwitchInNamespace, StatusNamesEachDifference) {
    KillSwitch kill_switch(config_);
    kill_switch.apply(Mode::tunnel);
    NftContext().run("add rule inet psiphon_filter output accept\n"
                     "add chain inet psiphon_filter input { policy accept; }\n");
    KillSwitchStatus status = kill_switch.status();
    EXPECT_FALSE(status.is_intact());
    ASSERT_EQ(status.differences.size(), 2u);
    EXPECT_NE(status.differences[0].find("chain input: "), std::string::npos);
    EXPECT_NE(status.differences[0].find("policy accept, expected"), std::string::npos);
    EXPECT_NE(status.differences[1].find("chain output: unexpected rule \"handle"), std::string::npos);
    EXPECT_EQ(kill_switch.apply(Mode::tunnel), Change::applied);
    EXPECT_TRUE(kill_switch.status().is_intact());
}

TEST_F(KillSwitchInNamespace, ADormantTableIsNotIntactAndUpRestoresIt) {
    KillSwitch kill_switch(config_);
    kill_switch.apply(Mode::tunnel);
    NftContext().run("add table inet psiphon_filter { flags dormant; }\n");
    KillSwitchStatus status = kill_switch.status();
    EXPECT_FALSE(status.is_intact());
    EXPECT_EQ(kill_switch.apply(Mode::tunnel), Change::applied);
    EXPECT_TRUE(kill_switch.status().is_intact());
}

TEST_F(KillSwitchInNamespace, ADuplicatedAcceptRuleIsADifference) {
    Config lan = config_;
    lan.allow_lan = true;
    KillSwitch kill_switch(lan);
    kill_switch.apply(Mode::tunnel);
    NftContext().run("insert rule inet psiphon_filter output ip daddr { 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
                     "169.254.0.0/16 } accept comment \"lan-ipv4\"\n");
    KillSwitchStatus status = kill_switch.status();
    ASSERT_FALSE(status.is_intact());
    EXPECT_EQ(status.differences.front(), "chain output: extra copy of rule \"lan-ipv4\"");
    EXPECT_EQ(kill_switch.apply(Mode::tunnel), Change::applied);
}

TEST_F(KillSwitchInNamespace, ObjectsAddedToTheTableAreDifferences) {
    KillSwitch kill_switch(config_);
    kill_switch.apply(Mode::tunnel);
    NftContext().run("add set inet psiphon_filter allowed { type ipv4_addr; }\n");
    KillSwitchStatus status = kill_switch.status();
    ASSERT_EQ(status.differences.size(), 1u);
    EXPECT_EQ(status.differences[0], "unexpected set allowed");
}

TEST_F(KillSwitchInNamespace, AllowLanIsADifferenceWhenTheConfigDoesNotAllowIt) {
    Config lan = config_;
    lan.allow_lan = true;
    KillSwitch(lan).apply(Mode::tunnel);
    KillSwitchStatus status = KillSwitch(config_).status();
    EXPECT_FALSE(status.is_intact());
    EXPECT_EQ(status.mode, std::nullopt);
    bool is_named = false;
    for (const auto& difference : status.differences)
        is_named = is_named || difference == "chain output: unexpected rule \"lan-not-tun-network-ipv4\"";
    EXPECT_TRUE(is_named);
}

TEST_F(KillSwitchInNamespace, OtherTablesAreNeverTouched) {
    NftContext nft;
    nft.run("table ip other { chain c { type filter hook output priority 0; policy accept;\n counter\n }\n }\n");
    const std::string before = nft.list_table_json("ip", "other").value();
    KillSwitch kill_switch(config_);
    kill_switch.apply(Mode::tunnel);
    kill_switch.apply(Mode::blocked);
    EXPECT_TRUE(kill_switch.remove());
    EXPECT_EQ(nft.list_table_json("ip", "other").value(), before);
    nft.run("delete table ip other\n");
}

TEST_F(KillSwitchInNamespace, DownRemovesOnlyItsTableAndSaysWhetherThereWasOne) {
    KillSwitch kill_switch(config_);
    EXPECT_FALSE(kill_switch.remove());
    kill_switch.apply(Mode::tunnel);
    EXPECT_TRUE(kill_switch.remove());
    EXPECT_FALSE(kill_switch.status().is_loaded);
}

TEST_F(KillSwitchInNamespace, AMissingTunnelUserIsAClearError) {
    Config config = config_;
    config.tunnel_user = "no-such-user-psi";
    try {
        KillSwitch(config).apply(Mode::tunnel);
        FAIL();
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "user no-such-user-psi does not exist (sudo make install creates it)");
    }
    EXPECT_FALSE(KillSwitch(config_).status().is_loaded);
}

}  // namespace
}  // namespace psi::fw
