#include "connect/cancellation.hpp"

#include <sys/socket.h>

#include "core/error.hpp"

namespace psi::connect {

void Cancellation::cancel() {
    std::lock_guard lock(mutex_);
    is_cancelled_ = true;
    for (int fd : watched_) ::shutdown(fd, SHUT_RDWR);
}

void Cancellation::watch(int fd) {
    std::lock_guard lock(mutex_);
    watched_.push_back(fd);
    if (is_cancelled_) ::shutdown(fd, SHUT_RDWR);
}

void Cancellation::throw_if_cancelled() const {
    std::lock_guard lock(mutex_);
    if (is_cancelled_) throw Error("cancelled");
}

void Cancellation::forget() {
    std::lock_guard lock(mutex_);
    watched_.clear();
}

}  // namespace psi::connect
