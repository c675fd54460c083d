#include "connect/ssh_client_version.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <set>

namespace psi::connect {

TEST(SshClientVersion, OpenSshLikeAndRandom) {
    std::set<std::string> seen;
    for (int i = 0; i < 200; ++i) {
        const std::string version = random_ssh_client_version();
        EXPECT_TRUE(std::regex_match(version, std::regex(R"(SSH-2\.0-OpenSSH_[78]\.[0-9])"))) << version;
        seen.insert(version);
    }
    EXPECT_GT(seen.size(), 10u);  // of 20
}

}  // namespace psi::connect
