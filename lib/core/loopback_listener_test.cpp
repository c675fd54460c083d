#include "core/loopback_listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "testing/test_support.hpp"

namespace psi {
namespace {

bool has_ipv6_loopback() {
    UniqueFd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    return probe.is_open() && ::bind(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

TEST(LoopbackListener, BindsBothLoopbackAddressesOnOnePort) {
    const LoopbackListeners listeners = listen_on_loopback(0);
    ASSERT_NE(listeners.port, 0);
    ASSERT_EQ(listeners.sockets.size(), has_ipv6_loopback() ? 2u : 1u);
    std::vector<std::string> addresses;
    for (const PortListener& listener : listeners_on_port(listeners.port)) {
        EXPECT_EQ(listener.uid, ::geteuid());
        addresses.push_back(listener.address);
    }
    EXPECT_NE(std::find(addresses.begin(), addresses.end(), "127.0.0.1"), addresses.end());
    if (has_ipv6_loopback()) {
        EXPECT_NE(std::find(addresses.begin(), addresses.end(), "::1"), addresses.end());
    }
}

TEST(LoopbackListener, APortTakenOnEitherAddressIsRefusedByName) {
    const LoopbackListeners held = listen_on_loopback(0);
    try {
        listen_on_loopback(held.port);
        FAIL() << "bound a port that is held";
    } catch (const Error& error) {
        EXPECT_EQ(std::string(error.what()), "cannot listen on 127.0.0.1:" + std::to_string(held.port) +
                                                 ": Address already in use (uid " + std::to_string(::geteuid()) +
                                                 " listens there)");
    }
}

TEST(LoopbackListener, AdoptsListeningLoopbackSocketsOnly) {
    LoopbackListeners held = listen_on_loopback(0);
    std::vector<int> fds;
    for (UniqueFd& socket : held.sockets) fds.push_back(::dup(socket.get()));
    const LoopbackListeners adopted = adopt_loopback_listeners(fds);
    EXPECT_EQ(adopted.port, held.port);
    EXPECT_EQ(adopted.sockets.size(), held.sockets.size());

    int pipe_ends[2];
    ASSERT_EQ(::pipe(pipe_ends), 0);
    UniqueFd reading(pipe_ends[0]);
    UniqueFd writing(pipe_ends[1]);
    EXPECT_THROW(adopt_loopback_listeners({reading.get()}), Error);
    UniqueFd unbound(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    try {
        adopt_loopback_listeners({unbound.get()});
        FAIL() << "adopted a socket that does not listen";
    } catch (const Error& error) {
        EXPECT_EQ(std::string(error.what()),
                  "descriptor " + std::to_string(unbound.get()) + " is not a TCP socket listening on a loopback address");
    }
}

TEST(LoopbackListener, ReadsListenersAndTheirOwnersFromProcNet) {
    psi::testing::TemporaryDirectory directory;
    std::ofstream(directory.path() + "/tcp")
        << "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
           "   0: 0100007F:0439 00000000:0000 0A 00000000:00000000 00:00000000 00000000  2000        0 1 1\n"
           "   1: 0100007F:0439 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
           "   2: 00000000:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 3 1\n"
           "   3: garbage\n";
    std::ofstream(directory.path() + "/tcp6")
        << "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
           "tm->when retrnsmt   uid  timeout inode\n"
           "   0: 00000000000000000000000001000000:0439 00000000000000000000000000000000:0000 0A 00000000:00000000 "
           "00:00000000 00000000     0        0 4 1\n";
    const std::vector<PortListener> socks = listeners_on_port(1081, directory.path());
    ASSERT_EQ(socks.size(), 2u);  // the established connection on 1081 is no listener
    EXPECT_EQ(socks[0].address, "127.0.0.1");
    EXPECT_EQ(socks[0].uid, 2000u);
    EXPECT_EQ(socks[1].address, "::1");
    EXPECT_EQ(socks[1].uid, 0u);
    const std::vector<PortListener> http = listeners_on_port(8081, directory.path());
    ASSERT_EQ(http.size(), 1u);
    EXPECT_EQ(http[0].address, "0.0.0.0");
    EXPECT_EQ(address_and_port("::1", 1081), "[::1]:1081");
}

}  // namespace
}  // namespace psi
