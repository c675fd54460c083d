// What lets a dial be cancelled from another thread: cancel() shuts down every descriptor the
// dial watches, so that a poll or a libssh read on one returns at once, and the dial then
// stops at its next check.
#pragma once

#include <mutex>
#include <vector>

namespace psi::connect {

class Cancellation {
public:
    void cancel();
    void watch(int fd);  // shut down at once when already cancelled
    void throw_if_cancelled() const;  // psi::Error("cancelled")
    // The dial is over: the descriptors it watched may be a tunnel's now, and stay up.
    void forget();

private:
    mutable std::mutex mutex_;
    bool is_cancelled_ = false;
    std::vector<int> watched_;
};

}  // namespace psi::connect
