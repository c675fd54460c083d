#include "connect/ssh_handle.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <filesystem>
#include <thread>

#include "connect/dial.hpp"
#include "core/unique_fd.hpp"

namespace psi::connect {
namespace {

std::size_t open_descriptors() {
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++count;
    return count;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

struct SocketPair {
    UniqueFd ours, peer;
    SocketPair() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        ours.reset(fds[0]);
        peer.reset(fds[1]);
    }
};

TEST(SshClientSession, NeverConnectedLeavesTheCallersDescriptorOpenAndNothingBehind) {
    SocketPair pair;
    const std::size_t before = open_descriptors();
    { SshClientSession session(pair.ours.get()); }
    EXPECT_EQ(open_descriptors(), before);
    EXPECT_TRUE(is_open(pair.ours.get()));
}

// libssh closes the descriptor of a session freed after a failed ssh_connect(): its own
// duplicate, never the caller's, which a dial closes once (a second close could hit a socket
// another dial just opened).
TEST(SshClientSession, AFailedConnectClosesOnlyLibsshsDuplicate) {
    initialize_libssh();
    SocketPair pair;
    const std::size_t before = open_descriptors();
    std::thread server([&] {
        const char banner[] = "SSH-2.0-OpenSSH_9.2\r\n";
        (void)!::send(pair.peer.get(), banner, sizeof banner - 1, MSG_NOSIGNAL);
        char buffer[256];
        (void)!::recv(pair.peer.get(), buffer, sizeof buffer, 0);  // the client's version line
        ::shutdown(pair.peer.get(), SHUT_RDWR);
    });
    {
        SshClientSession session(pair.ours.get());
        const long seconds = 5;
        const bool no = false;
        ssh_options_set(session.get(), SSH_OPTIONS_PROCESS_CONFIG, &no);
        ssh_options_set(session.get(), SSH_OPTIONS_HOST, "192.0.2.1");
        ssh_options_set(session.get(), SSH_OPTIONS_TIMEOUT, &seconds);
        EXPECT_NE(session.connect(), SSH_OK);
    }
    server.join();
    EXPECT_EQ(open_descriptors(), before);
    EXPECT_TRUE(is_open(pair.ours.get()));
}

}  // namespace
}  // namespace psi::connect
