#include "connect/ossh_pump.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "core/error.hpp"

namespace psi::connect {
namespace {

constexpr std::size_t queue_limit = 256 * 1024;
constexpr std::size_t read_size = 64 * 1024;

enum class Io { progress, would_block, closed, failed };

Io receive(int fd, std::string_view& got) {
    static thread_local char buffer[read_size];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
        got = std::string_view(buffer, static_cast<std::size_t>(n));
        return Io::progress;
    }
    if (n == 0) return Io::closed;
    if (errno == EAGAIN || errno == EINTR) return Io::would_block;
    return Io::failed;
}

Io send_front(int fd, std::string& queue) {
    const ssize_t n = ::send(fd, queue.data(), queue.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
        queue.erase(0, static_cast<std::size_t>(n));
        return Io::progress;
    }
    if (errno == EAGAIN || errno == EINTR) return Io::would_block;
    return Io::failed;
}

}  // namespace

OsshPump::OsshPump(UniqueFd network, UniqueFd libssh_side, std::unique_ptr<ssh::ClientObfuscator> obfuscator,
                   std::string preamble)
    : network_(std::move(network)),
      libssh_side_(std::move(libssh_side)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
      obfuscator_(std::move(obfuscator)),
      to_network_(std::move(preamble)) {
    if (!wake_.is_open()) throw Error(std::string("eventfd: ") + std::strerror(errno));
    thread_ = std::thread([this] { run(); });
}

OsshPump::~OsshPump() { stop(); }

void OsshPump::stop() {
    if (!thread_.joinable()) return;
    const std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
    thread_.join();
    std::lock_guard lock(mutex_);
    failure_.clear();
}

std::string OsshPump::failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
}

void OsshPump::fail(std::string reason) {
    std::lock_guard lock(mutex_);
    if (failure_.empty()) failure_ = std::move(reason);
}

void OsshPump::run() {
    bool is_network_closed = false;
    bool is_libssh_closed = false;
    for (;;) {
        if (is_network_closed && to_libssh_.empty()) {
            fail("the server closed the connection");
            break;
        }
        if (is_libssh_closed && to_network_.empty()) break;
        pollfd fds[3] = {{network_.get(), 0, 0}, {libssh_side_.get(), 0, 0}, {wake_.get(), POLLIN, 0}};
        if (!is_network_closed && to_libssh_.size() < queue_limit) fds[0].events |= POLLIN;
        if (!to_network_.empty()) fds[0].events |= POLLOUT;
        if (!is_libssh_closed && to_network_.size() < queue_limit) fds[1].events |= POLLIN;
        if (!to_libssh_.empty()) fds[1].events |= POLLOUT;
        if (::poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            fail(std::string("poll: ") + std::strerror(errno));
            break;
        }
        if (fds[2].revents) break;

        std::string_view got;
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR) && (fds[0].events & POLLIN)) {
            const Io io = receive(network_.get(), got);
            if (io == Io::progress) {
                try {
                    to_libssh_ += obfuscator_->inbound(got);
                } catch (const Error& error) {
                    fail(std::string("not an OSSH server: ") + error.what());
                    break;
                }
            } else if (io == Io::closed) {
                is_network_closed = true;
            } else if (io == Io::failed) {
                fail(std::string("connection to the server: ") + std::strerror(errno));
                break;
            }
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR) && (fds[1].events & POLLIN)) {
            const Io io = receive(libssh_side_.get(), got);
            if (io == Io::progress) {
                to_network_ += obfuscator_->outbound(got);
            } else if (io == Io::closed || io == Io::failed) {
                is_libssh_closed = true;
            }
        }
        if ((fds[0].revents & (POLLOUT | POLLERR)) && !to_network_.empty() &&
            send_front(network_.get(), to_network_) == Io::failed) {
            fail(std::string("connection to the server: ") + std::strerror(errno));
            break;
        }
        if ((fds[1].revents & (POLLOUT | POLLERR)) && !to_libssh_.empty() &&
            send_front(libssh_side_.get(), to_libssh_) == Io::failed)
            break;  // libssh's end is gone: the session is over
    }
    ::shutdown(network_.get(), SHUT_RDWR);
    libssh_side_.reset();
    network_.reset();
}

}  // namespace psi::connect
