#include "core/event_loop.hpp"

#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "core/error.hpp"

namespace psi {
namespace {

// The descriptor in the low half, its registration's generation in the high half, so an event
// queued for a descriptor that was closed and reused meanwhile is recognised as stale.
std::uint64_t event_key(int fd, std::uint32_t generation) {
    return static_cast<std::uint64_t>(generation) << 32 | static_cast<std::uint32_t>(fd);
}

}  // namespace

EventLoop::EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (!epoll_.is_open()) throw_system_error("cannot create an epoll instance", errno);
}

void EventLoop::add(int fd, std::uint32_t events, Handler handler) {
    const std::uint32_t generation = next_generation_++;
    epoll_event event{};
    event.events = events;
    event.data.u64 = event_key(fd, generation);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) throw_system_error("epoll_ctl add", errno);
    watches_[fd] = Watch{generation, std::make_shared<Handler>(std::move(handler))};
}

void EventLoop::modify(int fd, std::uint32_t events) {
    const auto found = watches_.find(fd);
    if (found == watches_.end()) return;
    epoll_event event{};
    event.events = events;
    event.data.u64 = event_key(fd, found->second.generation);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) != 0) throw_system_error("epoll_ctl modify", errno);
}

void EventLoop::remove(int fd) {
    if (watches_.erase(fd) == 0) return;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::every(std::chrono::milliseconds period, std::function<void()> tick) {
    UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer.is_open()) throw_system_error("cannot create a timer", errno);
    itimerspec spec{};
    spec.it_interval.tv_sec = period.count() / 1000;
    spec.it_interval.tv_nsec = (period.count() % 1000) * 1000000;
    spec.it_value = spec.it_interval;
    if (::timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) throw_system_error("cannot arm a timer", errno);
    const int fd = timer.get();
    add(fd, EPOLLIN, [fd, tick = std::move(tick)](std::uint32_t) {
        std::uint64_t expirations = 0;
        if (::read(fd, &expirations, sizeof expirations) == sizeof expirations) tick();
    });
    timers_.push_back(std::move(timer));
}

void EventLoop::run() {
    is_running_ = true;
    std::array<epoll_event, 256> events{};
    while (is_running_) {
        const int count =
            ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), deferred_.empty() ? -1 : 0);
        if (count < 0) {
            if (errno == EINTR) continue;
            throw_system_error("epoll_wait", errno);
        }
        for (int i = 0; i < count && is_running_; ++i) {
            const int fd = static_cast<int>(events[i].data.u64 & 0xffffffffu);
            const auto generation = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
            const auto found = watches_.find(fd);
            if (found == watches_.end() || found->second.generation != generation) continue;
            const std::shared_ptr<Handler> handler = found->second.handler;  // survives its own removal
            (*handler)(events[i].events);
        }
        std::vector<std::function<void()>> deferred;
        deferred.swap(deferred_);
        for (auto& call : deferred) call();
    }
}

}  // namespace psi
