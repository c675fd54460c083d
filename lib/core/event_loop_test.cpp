#include "core/event_loop.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace psi {
namespace {

using namespace std::chrono_literals;

struct Pipe {
    UniqueFd read_end, write_end;
};

Pipe make_pipe() {
    int ends[2];
    if (::pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    return {UniqueFd(ends[0]), UniqueFd(ends[1])};
}

void write_byte(int fd) {
    const char byte = 'x';
    if (::write(fd, &byte, 1) != 1) throw std::runtime_error("write failed");
}

// Ends the loop after `limit` whatever happens, so that a test that waits for an event that
// never comes fails instead of hanging; the flag tells which way it ended.
void stop_after(EventLoop& loop, std::chrono::milliseconds limit, bool& has_timed_out) {
    loop.every(limit, [&loop, &has_timed_out] {
        has_timed_out = true;
        loop.stop();
    });
}

TEST(EventLoopTest, DeliversReadinessOfADescriptor) {
    EventLoop loop;
    Pipe pipe = make_pipe();
    std::uint32_t seen = 0;
    std::string received;
    loop.add(pipe.read_end.get(), EPOLLIN, [&](std::uint32_t events) {
        seen = events;
        char buffer[16];
        const ssize_t got = ::read(pipe.read_end.get(), buffer, sizeof buffer);
        if (got > 0) received.assign(buffer, static_cast<std::size_t>(got));
        loop.stop();
    });
    EXPECT_TRUE(loop.contains(pipe.read_end.get()));
    bool has_timed_out = false;
    stop_after(loop, 2000ms, has_timed_out);
    ASSERT_EQ(::write(pipe.write_end.get(), "hello", 5), 5);
    loop.run();
    EXPECT_FALSE(has_timed_out);
    EXPECT_TRUE(seen & EPOLLIN);
    EXPECT_EQ(received, "hello");
}

TEST(EventLoopTest, ModifyChangesWhatIsWatched) {
    EventLoop loop;
    int ends[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, ends), 0);
    UniqueFd socket(ends[0]), peer(ends[1]);
    std::vector<std::uint32_t> calls;
    loop.add(socket.get(), 0, [&](std::uint32_t events) {
        calls.push_back(events);
        loop.stop();
    });
    int ticks = 0;
    loop.every(10ms, [&] {
        // Writable all along, but not watched for it until the third tick.
        if (++ticks == 3) loop.modify(socket.get(), EPOLLOUT);
        if (ticks == 200) loop.stop();
    });
    loop.run();
    EXPECT_EQ(ticks, 3);
    ASSERT_EQ(calls.size(), 1u);
    EXPECT_EQ(calls[0] & (EPOLLIN | EPOLLOUT), static_cast<std::uint32_t>(EPOLLOUT));

    // Back to nothing: the socket stays quiet even with bytes to read.
    loop.modify(socket.get(), 0);
    write_byte(peer.get());
    calls.clear();
    int quiet_ticks = 0;
    loop.every(10ms, [&] {
        if (++quiet_ticks == 5) loop.stop();
    });
    loop.run();
    EXPECT_TRUE(calls.empty());
}

TEST(EventLoopTest, ModifyAndRemoveOfAnUnknownDescriptorDoNothing) {
    EventLoop loop;
    Pipe pipe = make_pipe();
    EXPECT_NO_THROW(loop.modify(pipe.read_end.get(), EPOLLIN));
    EXPECT_NO_THROW(loop.remove(pipe.read_end.get()));
    EXPECT_FALSE(loop.contains(pipe.read_end.get()));
}

TEST(EventLoopTest, AddingADescriptorTwiceIsAnError) {
    EventLoop loop;
    Pipe pipe = make_pipe();
    loop.add(pipe.read_end.get(), EPOLLIN, [](std::uint32_t) {});
    EXPECT_THROW(loop.add(pipe.read_end.get(), EPOLLIN, [](std::uint32_t) {}), Error);
}

TEST(EventLoopTest, ARemovedDescriptorGetsNoMoreEvents) {
    EventLoop loop;
    Pipe pipe = make_pipe();
    write_byte(pipe.write_end.get());  // readable for as long as nobody reads it
    int calls = 0;
    const std::string captured = "still here";
    std::string seen_after_removal;
    loop.add(pipe.read_end.get(), EPOLLIN, [&, captured](std::uint32_t) {
        ++calls;
        loop.remove(pipe.read_end.get());
        seen_after_removal = captured;  // the handler outlives its own removal
    });
    int ticks = 0;
    loop.every(10ms, [&] {
        if (++ticks == 5) loop.stop();
    });
    loop.run();
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(seen_after_removal, "still here");
    EXPECT_FALSE(loop.contains(pipe.read_end.get()));
}

TEST(EventLoopTest, RemovingAnotherDescriptorInTheSameRoundStopsItsEvent) {
    EventLoop loop;
    std::array<Pipe, 2> pipes = {make_pipe(), make_pipe()};
    std::array<int, 2> calls = {0, 0};
    for (int i = 0; i < 2; ++i) {
        loop.add(pipes[i].read_end.get(), EPOLLIN, [&, i](std::uint32_t) {
            ++calls[i];
            // Whichever comes first removes the other, whose event is in this round too.
            loop.remove(pipes[1 - i].read_end.get());
            loop.remove(pipes[i].read_end.get());
        });
    }
    write_byte(pipes[0].write_end.get());
    write_byte(pipes[1].write_end.get());
    int ticks = 0;
    loop.every(10ms, [&] {
        if (++ticks == 3) loop.stop();
    });
    loop.run();
    EXPECT_EQ(calls[0] + calls[1], 1) << calls[0] << " and " << calls[1];
}

TEST(EventLoopTest, AStaleEventDoesNotReachANewWatchOnTheSameDescriptorNumber) {
    EventLoop loop;
    std::array<Pipe, 2> pipes = {make_pipe(), make_pipe()};
    std::array<int, 2> old_calls = {0, 0};
    int new_calls = 0;
    Pipe replacement;
    for (int i = 0; i < 2; ++i) {
        loop.add(pipes[i].read_end.get(), EPOLLIN, [&, i](std::uint32_t) {
            ++old_calls[i];
            loop.remove(pipes[i].read_end.get());
            // Close the other (its event is queued in this round) and put a quiet pipe at its number.
            const int number = pipes[1 - i].read_end.get();
            if (!loop.contains(number)) return;
            loop.remove(number);
            replacement = make_pipe();
            ASSERT_EQ(::dup3(replacement.read_end.get(), number, O_CLOEXEC), number);
            loop.add(number, EPOLLIN, [&, number](std::uint32_t) {
                ++new_calls;
                char byte;
                (void)::read(number, &byte, 1);
                loop.stop();
            });
        });
    }
    write_byte(pipes[0].write_end.get());
    write_byte(pipes[1].write_end.get());
    int ticks = 0;
    loop.every(10ms, [&] {
        if (++ticks == 3) loop.stop();
    });
    loop.run();
    EXPECT_EQ(old_calls[0] + old_calls[1], 1);
    EXPECT_EQ(new_calls, 0);  // the replacement has nothing to read

    // And the new watch is live: it sees its own data.
    write_byte(replacement.write_end.get());
    ticks = 0;
    loop.run();
    EXPECT_EQ(new_calls, 1);
}

TEST(EventLoopTest, EveryTicksAtItsPeriod) {
    EventLoop loop;
    int fast = 0, slow = 0;
    const auto start = std::chrono::steady_clock::now();
    loop.every(10ms, [&] {
        if (++fast == 10) loop.stop();
    });
    loop.every(35ms, [&] { ++slow; });
    loop.run();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(fast, 10);
    EXPECT_GE(elapsed, 95ms);
    EXPECT_LT(elapsed, 2s);
    EXPECT_GE(slow, 1);
    EXPECT_LT(slow, fast);  // each timer keeps its own period
}

TEST(EventLoopTest, DeferredCallsRunAfterTheRoundInOrderWithoutBlocking) {
    EventLoop loop;
    Pipe pipe = make_pipe();
    std::vector<std::string> order;
    loop.add(pipe.read_end.get(), EPOLLIN, [&](std::uint32_t) {
        char byte;
        (void)::read(pipe.read_end.get(), &byte, 1);
        loop.defer([&] {
            order.push_back("first");
            loop.defer([&] {
                order.push_back("nested");
                loop.stop();
            });
        });
        loop.defer([&] { order.push_back("second"); });
        order.push_back("handler");
    });
    write_byte(pipe.write_end.get());
    loop.run();  // nothing else ever becomes ready: the nested call must not wait for an event
    EXPECT_EQ(order, (std::vector<std::string>{"handler", "first", "second", "nested"}));
}

TEST(EventLoopTest, StopEndsTheRoundAndRunCanResume) {
    EventLoop loop;
    std::array<Pipe, 2> pipes = {make_pipe(), make_pipe()};
    std::array<int, 2> calls = {0, 0};
    for (int i = 0; i < 2; ++i) {
        loop.add(pipes[i].read_end.get(), EPOLLIN, [&, i](std::uint32_t) {
            ++calls[i];
            char byte;
            (void)::read(pipes[i].read_end.get(), &byte, 1);
            loop.stop();
        });
    }
    write_byte(pipes[0].write_end.get());
    write_byte(pipes[1].write_end.get());
    loop.run();
    EXPECT_EQ(calls[0] + calls[1], 1);  // the other event of the round waits
    loop.run();
    EXPECT_EQ(calls[0], 1);
    EXPECT_EQ(calls[1], 1);
}

TEST(EventLoopTest, ExceptionsFromCallbacksLeaveRun) {
    EventLoop loop;
    Pipe pipe = make_pipe();
    write_byte(pipe.write_end.get());
    loop.add(pipe.read_end.get(), EPOLLIN, [](std::uint32_t) { throw std::runtime_error("callback failed"); });
    EXPECT_THROW(loop.run(), std::runtime_error);
}

}  // namespace
}  // namespace psi
