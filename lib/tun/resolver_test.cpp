#include "tun/resolver.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "core/atomic_file.hpp"
#include "testing/test_support.hpp"

namespace psi::tun {
namespace {

class Resolver : public ::testing::Test {
protected:
    psi::testing::TemporaryDirectory temporary_;
    const std::string directory_ = temporary_.path();
    ResolverSettings settings_{"PsiphonTUN", "10.200.3.2", "fd42:42:42::2", directory_ + "/resolv.conf", directory_};
};

TEST_F(Resolver, AFileIsReplacedAndRestoredByteForByte) {
    const std::string previous = "# from DHCP\nnameserver 192.168.77.1\nsearch lan\n";
    write_file_atomically(settings_.resolv_conf, previous, 0644);
    const json::Value record = plan_resolver_change(settings_);
    EXPECT_EQ(read_file(settings_.resolv_conf), previous) << "planning changes nothing";
    EXPECT_EQ(read_file(record.find("backup")->as_string()), previous);
    apply_resolver_change(settings_, record);
    const std::string pointed = read_file(settings_.resolv_conf);
    EXPECT_NE(pointed.find("nameserver 10.200.3.2\nnameserver fd42:42:42::2\n"), std::string::npos);
    EXPECT_EQ(pointed.find("192.168.77.1"), std::string::npos);
    restore_resolver(settings_, record);
    EXPECT_EQ(read_file(settings_.resolv_conf), previous);
}

TEST_F(Resolver, ASymlinkIsReplacedByAFileAndComesBack) {
    write_file_atomically(directory_ + "/stub-resolv.conf", "nameserver 127.0.0.53\n", 0644);
    ASSERT_EQ(::symlink("stub-resolv.conf", settings_.resolv_conf.c_str()), 0);
    const json::Value record = plan_resolver_change(settings_);
    apply_resolver_change(settings_, record);
    EXPECT_FALSE(std::filesystem::is_symlink(settings_.resolv_conf));
    EXPECT_EQ(read_file(directory_ + "/stub-resolv.conf"), "nameserver 127.0.0.53\n");
    restore_resolver(settings_, record);
    ASSERT_TRUE(std::filesystem::is_symlink(settings_.resolv_conf));
    EXPECT_EQ(std::filesystem::read_symlink(settings_.resolv_conf), "stub-resolv.conf");
}

TEST_F(Resolver, PsisOwnFileIsNeverKeptAsThePreviousOne) {
    write_file_atomically(settings_.resolv_conf, "nameserver 192.0.2.1\n", 0644);
    const json::Value first = plan_resolver_change(settings_);
    apply_resolver_change(settings_, first);
    const std::string psi_file = read_file(settings_.resolv_conf);
    // A restart erased the record; the next up finds psi's file in place.
    const json::Value second = plan_resolver_change(settings_);
    EXPECT_TRUE(second.find("previousLost"));
    EXPECT_EQ(second.find("backup"), nullptr);
    apply_resolver_change(settings_, second);
    restore_resolver(settings_, second);
    EXPECT_EQ(read_file(settings_.resolv_conf), psi_file) << "fails closed: still the in-tunnel resolver";
}

TEST_F(Resolver, AnAbsentFileIsAbsentAgain) {
    const json::Value record = plan_resolver_change(settings_);
    apply_resolver_change(settings_, record);
    EXPECT_TRUE(std::filesystem::exists(settings_.resolv_conf));
    restore_resolver(settings_, record);
    EXPECT_FALSE(std::filesystem::exists(settings_.resolv_conf));
}

}  // namespace
}  // namespace psi::tun
