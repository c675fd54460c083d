#include "connect/ossh_pump.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
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

std::string random_padding() {
    unsigned char length_bytes[2];
    if (RAND_bytes(length_bytes, sizeof length_bytes) != 1) throw Error("no randomness for the OSSH padding");
    const std::size_t length = ((length_bytes[0] << 8) | length_bytes[1]) % (ssh::obfuscation_max_padding + 1);
    std::string padding(length, '\0');
    if (length && RAND_bytes(reinterpret_cast<unsigned char*>(padding.data()), static_cast<int>(length)) != 1)
        throw Error("no randomness for the OSSH padding");
    return padding;
}

}  // namespace

OsshOverStream start_ossh(std::unique_ptr<NetworkStream> network, const TransportRequest& request) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        throw Error(std::string("socketpair: ") + std::strerror(errno));
    OsshOverStream ossh;
    ossh.libssh_side = UniqueFd(pair[0]);
    UniqueFd pump_side(pair[1]);
    request.cancellation.watch(ossh.libssh_side.get());
    ssh::ObfuscationSeed seed;
    if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) throw Error("no randomness for OSSH");
    auto obfuscator = std::make_unique<ssh::ClientObfuscator>(request.entry.string_value("sshObfuscatedKey"), seed);
    const std::string padding = random_padding();
    ossh.padding_length = padding.size();
    std::string preamble = obfuscator->preamble(padding);
    ossh.pump = std::make_unique<OsshPump>(std::move(network), std::move(pump_side), std::move(obfuscator),
                                           std::move(preamble));
    const int flags = ::fcntl(ossh.libssh_side.get(), F_GETFL);
    ::fcntl(ossh.libssh_side.get(), F_SETFL, flags | O_NONBLOCK);
    return ossh;
}

OsshPump::OsshPump(std::unique_ptr<NetworkStream> network, UniqueFd libssh_side, std::unique_ptr<ssh::ClientObfuscator> obfuscator,
                   std::string preamble)
    : network_(std::move(network)),
      libssh_side_(make_socket_stream(std::move(libssh_side))),
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
        const bool want_network_read = !is_network_closed && to_libssh_.size() < queue_limit;
        const bool want_network_write = !to_network_.empty();
        pollfd fds[3] = {
            {network_->fd(), network_->poll_events(want_network_read, want_network_write), 0},
            {libssh_side_->fd(),
             libssh_side_->poll_events(!is_libssh_closed && to_network_.size() < queue_limit, !to_libssh_.empty()), 0},
            {wake_.get(), POLLIN, 0}};
        const bool is_input_buffered = want_network_read && network_->has_buffered_input();
        if (::poll(fds, 3, is_input_buffered ? 0 : -1) < 0) {
            if (errno == EINTR) continue;
            fail(std::string("poll: ") + std::strerror(errno));
            break;
        }
        if (fds[2].revents) break;

        constexpr short trouble = POLLHUP | POLLERR;
        const short network_read_events = network_->poll_events(true, false) | trouble;
        const short network_write_events = network_->poll_events(false, true) | trouble;
        std::string_view got;
        if (want_network_read && (is_input_buffered || (fds[0].revents & network_read_events))) {
            const StreamIo io = network_->receive(got);
            if (io == StreamIo::progress) {
                try {
                    to_libssh_ += obfuscator_->inbound(got);
                } catch (const Error& error) {
                    fail(std::string("not an OSSH server: ") + error.what());
                    break;
                }
            } else if (io == StreamIo::closed) {
                is_network_closed = true;
            } else if (io == StreamIo::failed) {
                fail("connection to the server: " + network_->failure_reason());
                break;
            }
        }
        if (fds[1].revents & (POLLIN | trouble) && (fds[1].events & POLLIN)) {
            const StreamIo io = libssh_side_->receive(got);
            if (io == StreamIo::progress) {
                to_network_ += obfuscator_->outbound(got);
            } else if (io == StreamIo::closed || io == StreamIo::failed) {
                is_libssh_closed = true;
            }
        }
        if (want_network_write && (fds[0].revents & network_write_events) &&
            network_->send_front(to_network_) == StreamIo::failed) {
            fail("connection to the server: " + network_->failure_reason());
            break;
        }
        if ((fds[1].revents & (POLLOUT | POLLERR)) && !to_libssh_.empty() &&
            libssh_side_->send_front(to_libssh_) == StreamIo::failed)
            break;  // libssh's end is gone: the session is over
    }
    network_->shut_down();
    libssh_side_.reset();
    network_.reset();
}

}  // namespace psi::connect
