#include "connect/establish.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "connect/dial_error.hpp"
#include "core/error.hpp"

namespace psi::connect {

Establisher::Establisher(std::vector<Candidate> candidates, const DialSettings& settings, std::size_t parallel)
    : settings_(settings), done_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!done_.is_open()) throw_system_error("eventfd", errno);
    std::vector<std::string> order;
    for (Candidate& candidate : candidates) {
        auto rank = std::find(order.begin(), order.end(), candidate.protocol);
        if (rank == order.end()) {
            order.push_back(candidate.protocol);
            waves_.emplace_back();
            rank = order.end() - 1;
        }
        waves_[static_cast<std::size_t>(rank - order.begin())].push_back(std::move(candidate));
    }
    std::size_t number = 0;
    for (std::vector<Candidate>& wave : waves_)
        for (Candidate& candidate : wave) {
            candidate.number = number++;
            candidate.count = candidates.size();
        }
    coordinator_ = std::thread([this, parallel] {
        for (const std::vector<Candidate>& wave : waves_) {
            next_ = 0;
            const std::size_t count = std::max<std::size_t>(1, std::min(parallel, wave.size()));
            for (std::size_t i = 0; i < count; ++i) workers_.emplace_back([this, &wave] { work(wave); });
            for (std::thread& worker : workers_) worker.join();
            workers_.clear();
            if (is_stopping_) break;
        }
        is_done_ = true;
        const std::uint64_t one = 1;
        (void)!::write(done_.get(), &one, sizeof one);
    });
}

Establisher::~Establisher() {
    is_stopping_ = true;
    cancel_all();
    coordinator_.join();
}

void Establisher::cancel_all() {
    std::lock_guard lock(mutex_);
    for (Dial* dial : running_) dial->cancel();
}

void Establisher::work(const std::vector<Candidate>& wave) {
    for (;;) {
        const std::size_t index = next_++;
        if (index >= wave.size() || is_stopping_) return;
        Dial dial(wave[index], settings_);
        {
            std::lock_guard lock(mutex_);
            if (winner_ || is_stopping_) return;
            running_.push_back(&dial);
        }
        std::unique_ptr<Tunnel> tunnel;
        std::string failure;
        servers::FailureClass failure_class = servers::FailureClass::none;
        try {
            tunnel = dial.run();
        } catch (const DialError& error) {
            failure = error.what();
            failure_class = error.failure();
        } catch (const Error& error) {
            failure = error.what();
        }
        std::lock_guard lock(mutex_);
        running_.erase(std::find(running_.begin(), running_.end(), &dial));
        if (tunnel && !winner_ && !is_stopping_) {
            winner_ = std::move(tunnel);
            is_stopping_ = true;
            for (Dial* other : running_) other->cancel();
            return;
        }
        if (!tunnel && !is_stopping_) failures_.push_back(DialFailure{wave[index], failure, failure_class});
    }
}

std::unique_ptr<Tunnel> Establisher::take_tunnel() {
    std::lock_guard lock(mutex_);
    return std::move(winner_);
}

std::vector<DialFailure> Establisher::failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
}

}  // namespace psi::connect
