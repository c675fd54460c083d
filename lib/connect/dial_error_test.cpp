#include "connect/dial_error.hpp"

#include <gtest/gtest.h>

#include <cerrno>

namespace psi::connect {
namespace {

using servers::FailureClass;

TEST(DialError, TcpErrorsSayWhetherTheServerWasUnreachableRefusedOrSilent) {
    EXPECT_EQ(failure_of_errno(ENETUNREACH), FailureClass::unreachable);
    EXPECT_EQ(failure_of_errno(EHOSTUNREACH), FailureClass::unreachable);
    EXPECT_EQ(failure_of_errno(ECONNREFUSED), FailureClass::refused);
    EXPECT_EQ(failure_of_errno(ECONNRESET), FailureClass::refused);
    EXPECT_EQ(failure_of_errno(ETIMEDOUT), FailureClass::timeout);
}

TEST(DialError, LibsshMessagesAreClassed) {
    EXPECT_EQ(failure_of_ssh_error("Timeout connecting to 192.0.2.1"), FailureClass::timeout);
    EXPECT_EQ(failure_of_ssh_error("Socket error: Connection reset by peer"), FailureClass::refused);
    EXPECT_EQ(failure_of_ssh_error("Socket error: disconnected"), FailureClass::refused);
    EXPECT_EQ(failure_of_ssh_error("kex error : no match for method kex algos"), FailureClass::handshake);
    const DialError error(FailureClass::auth, "the server refused the credentials");
    EXPECT_EQ(error.failure(), FailureClass::auth);
    EXPECT_STREQ(error.what(), "the server refused the credentials");
}

}  // namespace
}  // namespace psi::connect
