#include "connect/transport.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "connect/protocols.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/loopback_listener.hpp"

namespace psi::connect {
namespace {

using Clock = std::chrono::steady_clock;

servers::ServerEntry entry_on(std::uint16_t port) {
    const std::string number = std::to_string(port);
    return servers::ServerEntry{json::parse(R"({"ipAddress":"127.0.0.1","sshPort":)" + number +
                                            R"(,"sshObfuscatedPort":)" + number +
                                            R"(,"sshObfuscatedKey":"0123456789abcdef","capabilities":["OSSH","SSH"]})")};
}

struct Dialled {
    std::unique_ptr<Transport> transport;
    UniqueFd libssh_side;
    UniqueFd server_side;
};

// Opens `protocol`'s transport to a listener on 127.0.0.1 and accepts the connection.
Dialled dial(const std::string& protocol) {
    LoopbackListeners listeners = listen_on_loopback(0);
    const servers::ServerEntry entry = entry_on(listeners.port);
    Cancellation cancellation;
    Dialled dialled;
    dialled.transport = find_spoken_protocol(protocol)->make_transport();
    const auto now = Clock::now();
    dialled.libssh_side =
        dialled.transport->open(TransportRequest{entry, protocol, now, now + std::chrono::seconds(5), cancellation});
    pollfd pending{listeners.sockets[0].get(), POLLIN, 0};
    EXPECT_EQ(::poll(&pending, 1, 5000), 1);
    dialled.server_side.reset(::accept4(listeners.sockets[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(dialled.server_side.is_open());
    return dialled;
}

std::string receive(int fd, std::size_t count) {
    std::string received;
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (received.size() < count && Clock::now() < deadline) {
        pollfd ready{fd, POLLIN, 0};
        if (::poll(&ready, 1, 100) != 1) continue;
        char buffer[16384];
        const ssize_t n = ::recv(fd, buffer, std::min(sizeof buffer, count - received.size()), MSG_DONTWAIT);
        if (n <= 0) break;
        received.append(buffer, static_cast<std::size_t>(n));
    }
    return received;
}

bool is_non_blocking(int fd) { return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }

TEST(Transport, SshIsTheTcpConnectionItself) {
    Dialled dialled = dial("SSH");
    EXPECT_TRUE(is_non_blocking(dialled.libssh_side.get()));
    ASSERT_EQ(::send(dialled.server_side.get(), "SSH-2.0-x\r\n", 11, MSG_NOSIGNAL), 11);
    EXPECT_EQ(receive(dialled.libssh_side.get(), 11), "SSH-2.0-x\r\n");
    DialReport report;
    dialled.transport->add_to(report);
    EXPECT_GE(report.dial_duration_ms, 0);
    EXPECT_FALSE(report.upstream_ossh_padding);
    EXPECT_EQ(dialled.transport->failure(), "");
}

// The server gets the seed and the obfuscated magic, padding length and padding at once, before
// libssh has said anything; and the transport says why it stopped when the server hangs up.
TEST(Transport, OsshSendsItsPreambleFirstAndNamesTheServersHangUp) {
    Dialled dialled = dial("OSSH");
    EXPECT_TRUE(is_non_blocking(dialled.libssh_side.get()));
    DialReport report;
    dialled.transport->add_to(report);
    ASSERT_TRUE(report.upstream_ossh_padding);
    const std::size_t preamble = 16 + 4 + 4 + *report.upstream_ossh_padding;
    EXPECT_EQ(receive(dialled.server_side.get(), preamble).size(), preamble);
    EXPECT_EQ(dialled.transport->failure(), "");

    dialled.server_side.reset();
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (dialled.transport->failure().empty() && Clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(dialled.transport->failure(), "the server closed the connection");
}

TEST(Transport, ARefusedConnectionIsOneClearLine) {
    std::uint16_t port = 0;
    { port = listen_on_loopback(0).port; }  // closed again: nothing listens there now
    const servers::ServerEntry entry = entry_on(port);
    Cancellation cancellation;
    const auto now = Clock::now();
    const std::string protocol = "OSSH";
    try {
        find_spoken_protocol(protocol)->make_transport()->open(
            TransportRequest{entry, protocol, now, now + std::chrono::seconds(5), cancellation});
        FAIL() << "connected";
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "TCP: Connection refused");
    }
}

TEST(Transport, ACancelledDialStopsAtOnce) {
    LoopbackListeners listeners = listen_on_loopback(0);
    const servers::ServerEntry entry = entry_on(listeners.port);
    Cancellation cancellation;
    cancellation.cancel();
    const auto now = Clock::now();
    const std::string protocol = "SSH";
    EXPECT_THROW(find_spoken_protocol(protocol)->make_transport()->open(
                     TransportRequest{entry, protocol, now, now + std::chrono::seconds(5), cancellation}),
                 Error);
}

}  // namespace
}  // namespace psi::connect
