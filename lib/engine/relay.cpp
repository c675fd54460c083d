#include "engine/relay.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

#include "core/error.hpp"

namespace psi::engine {
namespace {

// Rounds per wake-up and direction, so that one busy flow cannot starve the others; level-
// triggered readiness brings the loop back for the rest.
constexpr int pump_rounds = 8;
constexpr int bulk_pipe_size = 1 << 20;

void make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
    int ends[2];
    if (::pipe2(ends, O_NONBLOCK | O_CLOEXEC) != 0) throw_system_error("cannot create a pipe", errno);
    read_end.reset(ends[0]);
    write_end.reset(ends[1]);
}

// Closing with SO_LINGER {1, 0} sends an RST instead of a FIN.
void arm_reset(int socket) {
    const linger abort{1, 0};
    ::setsockopt(socket, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
}

}  // namespace

Relay::Relay(EventLoop& loop, UniqueFd application, UniqueFd upstream, RelayCounters& counters, Done done)
    : loop_(loop), application_(std::move(application)), upstream_(std::move(upstream)), done_(std::move(done)) {
    make_pipe(up_.pipe_read, up_.pipe_write);
    make_pipe(down_.pipe_read, down_.pipe_write);
    for (Direction* direction : {&up_, &down_}) {
        const int capacity = ::fcntl(direction->pipe_write.get(), F_GETPIPE_SZ);
        direction->capacity = capacity > 0 ? static_cast<std::size_t>(capacity) : 4096;
    }
    up_.from = application_.get();
    up_.to = upstream_.get();
    up_.counter = &counters.up;
    down_.from = upstream_.get();
    down_.to = application_.get();
    down_.counter = &counters.down;
    const int application_fd = application_.get();
    const int upstream_fd = upstream_.get();
    loop_.add(application_fd, 0, [this, application_fd](std::uint32_t events) { on_event(application_fd, events); });
    loop_.add(upstream_fd, 0, [this, upstream_fd](std::uint32_t events) { on_event(upstream_fd, events); });
    update_interest();
}

Relay::~Relay() {
    loop_.remove(application_.get());
    loop_.remove(upstream_.get());
}

void Relay::on_event(int socket, std::uint32_t events) {
    if (is_finished_) return;
    has_moved_ = false;
    // A direction moves when its source is readable or its destination writable: one splice(2)
    // fewer per wake-up than trying both. Trouble, or a socket no longer watched, moves both.
    const bool is_application = socket == application_.get();
    const bool moves_both =
        (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) || is_application_hung_up_ || is_upstream_hung_up_;
    const Direction* reading = (events & EPOLLIN) ? (is_application ? &up_ : &down_) : nullptr;
    const Direction* writing = (events & EPOLLOUT) ? (is_application ? &down_ : &up_) : nullptr;
    for (Direction* direction : {&up_, &down_}) {
        if (!moves_both && direction != reading && direction != writing) continue;
        const Fault fault = pump(*direction);
        if (fault == Fault::none) continue;
        // A reset on one side is passed on as a reset to the other.
        const int other = fault == Fault::source_reset ? direction->to : direction->from;
        finish(Outcome::reset, other);
        return;
    }
    if (up_.is_finished() && down_.is_finished()) {
        finish(Outcome::closed, -1);
        return;
    }
    // An error or hang-up that moved nothing would wake the loop forever. A reset is passed on
    // as one. A plain hang-up (both directions of that socket shut, data perhaps still queued in
    // it) stops being watched: the other socket's readiness drives the rest, as the hung-up one
    // is always readable. Both hung up and stuck: nothing can move any more.
    if ((events & (EPOLLHUP | EPOLLERR)) && !has_moved_) {
        int error = 0;
        socklen_t length = sizeof error;
        ::getsockopt(socket, SOL_SOCKET, SO_ERROR, &error, &length);
        const bool is_application = socket == application_.get();
        const int other = is_application ? upstream_.get() : application_.get();
        if (error != 0) {
            finish(Outcome::reset, other);
            return;
        }
        if (is_application ? is_upstream_hung_up_ : is_application_hung_up_) {
            finish(Outcome::failed, -1);
            return;
        }
        (is_application ? is_application_hung_up_ : is_upstream_hung_up_) = true;
        loop_.remove(socket);
    }
    update_interest();
}

Relay::Fault Relay::pump(Direction& direction) {
    for (int round = 0; round < pump_rounds; ++round) {
        bool has_moved = false;
        // Less than asked for means the source had no more, or the destination took no more:
        // trying again now would only return EAGAIN, and level-triggered readiness says when.
        bool is_source_dry = direction.is_source_done, is_destination_full = false;
        if (direction.wants_read()) {
            const std::size_t room = direction.capacity - direction.in_pipe;
            const ssize_t read = ::splice(direction.from, nullptr, direction.pipe_write.get(), nullptr, room,
                                          SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (read > 0) {
                direction.in_pipe += static_cast<std::size_t>(read);
                if (direction.in_pipe == direction.capacity) grow(direction);
                is_source_dry = static_cast<std::size_t>(read) < room;
                has_moved = true;
            } else if (read == 0) {
                direction.is_source_done = true;
                is_source_dry = true;
                has_moved = true;
            } else if (errno != EAGAIN && errno != EINTR) {
                return Fault::source_reset;
            } else {
                is_source_dry = true;
            }
        }
        if (direction.in_pipe > 0) {
            const std::size_t queued = direction.in_pipe;
            const ssize_t written = ::splice(direction.pipe_read.get(), nullptr, direction.to, nullptr, queued,
                                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (written > 0) {
                direction.in_pipe -= static_cast<std::size_t>(written);
                *direction.counter += static_cast<std::uint64_t>(written);
                is_destination_full = static_cast<std::size_t>(written) < queued;
                has_moved = true;
            } else if (written < 0 && errno != EAGAIN && errno != EINTR) {
                return Fault::destination_reset;
            } else {
                is_destination_full = true;
            }
        }
        if (direction.is_source_done && direction.in_pipe == 0 && !direction.is_shut) {
            ::shutdown(direction.to, SHUT_WR);
            direction.is_shut = true;
        }
        if (!has_moved) break;
        has_moved_ = true;
        if (is_source_dry && (direction.in_pipe == 0 || is_destination_full)) break;
    }
    return Fault::none;
}

// A pipe that fills up carries a bulk flow: it grows once, so that each splice(2) moves more.
// Interactive flows keep the default, and the tunnel user's pipe budget (pipe-user-pages-soft)
// goes to the flows that use it; past the budget the kernel refuses and the size stays.
void Relay::grow(Direction& direction) {
    if (direction.has_grown) return;
    direction.has_grown = true;
    const int capacity = ::fcntl(direction.pipe_write.get(), F_SETPIPE_SZ, bulk_pipe_size);
    if (capacity > 0) direction.capacity = static_cast<std::size_t>(capacity);
}

void Relay::update_interest() {
    const std::uint32_t application = (up_.wants_read() ? EPOLLIN : 0u) | (down_.in_pipe > 0 ? EPOLLOUT : 0u);
    const std::uint32_t upstream = (down_.wants_read() ? EPOLLIN : 0u) | (up_.in_pipe > 0 ? EPOLLOUT : 0u);
    if (application != application_events_ && !is_application_hung_up_)
        loop_.modify(application_.get(), application_events_ = application);
    if (upstream != upstream_events_ && !is_upstream_hung_up_) loop_.modify(upstream_.get(), upstream_events_ = upstream);
}

void Relay::finish(Outcome outcome, int socket_to_reset) {
    is_finished_ = true;
    if (socket_to_reset >= 0) arm_reset(socket_to_reset);
    loop_.remove(application_.get());
    loop_.remove(upstream_.get());
    application_.reset();
    upstream_.reset();
    up_.pipe_read.reset();
    up_.pipe_write.reset();
    down_.pipe_read.reset();
    down_.pipe_write.reset();
    // Last: the owner may destroy this relay from inside the callback.
    Done done = std::move(done_);
    if (done) done(outcome);
}

}  // namespace psi::engine
