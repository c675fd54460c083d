// Establishment (docs/protocol.md §8): candidates are dialled several at a time, in order; the first
// tunnel to come up wins and the dials still running are cancelled. Protocols go in waves, in the
// order the candidates name them: plain SSH (easier to fingerprint) is dialled only once every
// OSSH candidate has failed. Runs on threads of its own;
// the event loop learns of the outcome when descriptor() becomes readable.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "connect/dial.hpp"
#include "servers/store.hpp"
#include "core/unique_fd.hpp"

namespace psi::connect {

struct DialFailure {
    Candidate candidate;
    std::string reason;  // one line: "the server refused the credentials"
    servers::FailureClass failure = servers::FailureClass::none;  // none: says nothing of the server
    std::string line() const { return candidate.label() + ": " + reason; }
};

class Establisher {
public:
    Establisher(std::vector<Candidate> candidates, const DialSettings& settings, std::size_t parallel);
    ~Establisher();  // cancels what still runs and waits for it
    Establisher(const Establisher&) = delete;
    Establisher& operator=(const Establisher&) = delete;

    int descriptor() const { return done_.get(); }
    bool is_done() const { return is_done_; }
    // Once done: the winner, or null when no candidate came up.
    std::unique_ptr<Tunnel> take_tunnel();
    // Once done: every candidate that failed (a cancelled one did not).
    std::vector<DialFailure> failures() const;

private:
    void work(const std::vector<Candidate>& wave);
    void cancel_all();

    std::vector<std::vector<Candidate>> waves_;
    const DialSettings& settings_;
    UniqueFd done_;
    std::atomic<std::size_t> next_{0};
    std::atomic<bool> is_stopping_{false};
    std::atomic<bool> is_done_{false};
    mutable std::mutex mutex_;
    std::vector<Dial*> running_;
    std::unique_ptr<Tunnel> winner_;
    std::vector<DialFailure> failures_;
    std::vector<std::thread> workers_;
    std::thread coordinator_;
};

}  // namespace psi::connect
