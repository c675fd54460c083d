#include "core/privileges.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <functional>

#include "core/error.hpp"

namespace psi {
namespace {

// Runs `check` in a child that dropped privileges (after `before`); the child's exit status is
// the verdict.
int in_dropped_child(const std::vector<cap_value_t>& keep, const std::function<bool()>& check,
                     const std::function<void()>& before = [] {}) {
    pid_t child = ::fork();
    if (child == 0) {
        try {
            before();
            drop_privileges(UserIdentity{"test", 4242, 4242}, keep);
            ::_exit(check() ? 0 : 1);
        } catch (const std::exception&) {
            ::_exit(2);
        }
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
}

class Privileges : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(::geteuid(), 0u) << "dropping privileges needs root"; }
};

TEST_F(Privileges, DropLeavesNoCapabilityAndNoWayBack) {
    EXPECT_EQ(in_dropped_child({}, [] {
                  gid_t groups[4];
                  return ::getuid() == 4242 && ::geteuid() == 4242 && ::getgid() == 4242 &&
                         ::getgroups(4, groups) == 0 && current_capabilities() == "=" &&
                         ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 && ::setuid(0) != 0 &&
                         ::prctl(PR_CAPBSET_READ, CAP_NET_ADMIN, 0, 0, 0) == 0;
              }),
              0);
}

TEST_F(Privileges, KeepsExactlyTheCapabilitiesAskedFor) {
    EXPECT_EQ(in_dropped_child({CAP_NET_BIND_SERVICE}, [] {
                  return current_capabilities() == "cap_net_bind_service=ep" &&
                         ::prctl(PR_CAPBSET_READ, CAP_NET_ADMIN, 0, 0, 0) == 0;
              }),
              0);
}

TEST_F(Privileges, TheParentDeathSignalOutlivesTheDrop) {
    const auto parent_death_signal = [] {
        int signal = 0;
        return ::prctl(PR_GET_PDEATHSIG, &signal, 0, 0, 0) == 0 ? signal : -1;
    };
    EXPECT_EQ(in_dropped_child({}, [&] { return parent_death_signal() == SIGTERM; },
                               [] { ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0); }),
              0);
    EXPECT_EQ(in_dropped_child({}, [&] { return parent_death_signal() == 0; }), 0);
}

TEST_F(Privileges, RefusesToDropToRoot) {
    EXPECT_THROW(drop_privileges(UserIdentity{"root", 0, 0}), Error);
}

TEST(UserLookup, NamesWhatDoesNotExist) {
    try {
        lookup_user("no-such-user-psi");
        FAIL();
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "user no-such-user-psi does not exist (sudo make install creates it)");
    }
    EXPECT_EQ(lookup_user("1500").uid, 1500u);
    EXPECT_EQ(lookup_user("root", "1234").gid, 1234u);
    EXPECT_THROW(lookup_user("root", "no-such-group-psi"), Error);
}

}  // namespace
}  // namespace psi
