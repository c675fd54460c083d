// One thread's event loop over epoll: readiness callbacks for file descriptors, and periodic
// timers. A callback may add, change or remove any descriptor, its own included; an event
// for a descriptor removed earlier in the same round is never delivered.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/unique_fd.hpp"

namespace psi {

class EventLoop {
public:
    using Handler = std::function<void(std::uint32_t events)>;

    EventLoop();

    // `events` are EPOLLIN, EPOLLOUT, ... (level-triggered). The loop does not own `fd`.
    void add(int fd, std::uint32_t events, Handler handler);
    void modify(int fd, std::uint32_t events);
    void remove(int fd);
    bool contains(int fd) const { return watches_.count(fd) != 0; }

    // Calls `tick` every `period` until the loop ends.
    void every(std::chrono::milliseconds period, std::function<void()> tick);

    // Calls `call` once, after the events of the current round (never from inside the caller).
    void defer(std::function<void()> call) { deferred_.push_back(std::move(call)); }

    // Runs until stop(); exceptions from callbacks propagate out of run().
    void run();
    void stop() { is_running_ = false; }

private:
    struct Watch {
        std::uint32_t generation;
        std::shared_ptr<Handler> handler;
    };

    UniqueFd epoll_;
    std::unordered_map<int, Watch> watches_;
    std::uint32_t next_generation_ = 1;
    std::vector<UniqueFd> timers_;
    std::vector<std::function<void()>> deferred_;
    bool is_running_ = false;
};

}  // namespace psi
