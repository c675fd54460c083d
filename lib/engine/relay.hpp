// Bytes both ways between two connected TCP sockets (the application's accepted connection and
// the SOCKS connection), zero-copy through a pipe per direction with splice(2). A full pipe
// stops reading from its source, so a slow reader never makes memory grow. An end-of-stream
// becomes a half-close on the other side; a reset becomes a reset (docs/packet-engine.md §3.6).
// The process must ignore SIGPIPE: splice(2) into a socket its peer reset raises it.
#pragma once

#include <cstdint>
#include <functional>

#include "core/event_loop.hpp"
#include "core/unique_fd.hpp"

namespace psi::engine {

struct RelayCounters {
    std::uint64_t up = 0;    // application to proxy
    std::uint64_t down = 0;  // proxy to application
};

class Relay {
public:
    enum class Outcome { closed, reset, failed };
    using Done = std::function<void(Outcome)>;

    // Throws psi::Error when no pipe can be made (descriptors exhausted).
    Relay(EventLoop& loop, UniqueFd application, UniqueFd upstream, RelayCounters& counters, Done done);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

private:
    struct Direction {
        int from = -1;
        int to = -1;
        UniqueFd pipe_read, pipe_write;
        std::size_t in_pipe = 0;
        std::size_t capacity = 0;     // of the pipe
        bool has_grown = false;
        bool is_source_done = false;  // end of stream read
        bool is_shut = false;         // passed on as a half-close
        std::uint64_t* counter = nullptr;
        bool wants_read() const { return !is_source_done && in_pipe < capacity; }
        bool is_finished() const { return is_shut; }
    };
    enum class Fault { none, source_reset, destination_reset };

    void on_event(int socket, std::uint32_t events);
    Fault pump(Direction& direction);
    static void grow(Direction& direction);
    void update_interest();
    void finish(Outcome outcome, int socket_to_reset);

    EventLoop& loop_;
    UniqueFd application_, upstream_;
    Direction up_, down_;
    Done done_;
    std::uint32_t application_events_ = 0, upstream_events_ = 0;
    bool is_finished_ = false;
    bool has_moved_ = false;  // in this wake-up
    bool is_application_hung_up_ = false, is_upstream_hung_up_ = false;  // no longer watched
};

}  // namespace psi::engine
