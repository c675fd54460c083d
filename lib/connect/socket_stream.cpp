// A NetworkStream that is the connected socket itself.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "connect/network_stream.hpp"

namespace psi::connect {
namespace {

constexpr std::size_t read_size = 64 * 1024;

class SocketStream final : public NetworkStream {
public:
    explicit SocketStream(UniqueFd socket) : socket_(std::move(socket)) {}

    int fd() const override { return socket_.get(); }

    StreamIo receive(std::string_view& got) override {
        const ssize_t n = ::recv(socket_.get(), buffer_, sizeof buffer_, 0);
        if (n > 0) {
            got = std::string_view(buffer_, static_cast<std::size_t>(n));
            return StreamIo::progress;
        }
        if (n == 0) return StreamIo::closed;
        return settle(errno);
    }

    StreamIo send_front(std::string& queue) override {
        const ssize_t n = ::send(socket_.get(), queue.data(), queue.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            queue.erase(0, static_cast<std::size_t>(n));
            return StreamIo::progress;
        }
        return settle(errno);
    }

    std::string failure_reason() const override { return std::strerror(error_); }

    void shut_down() override { ::shutdown(socket_.get(), SHUT_RDWR); }

private:
    StreamIo settle(int error) {
        if (error == EAGAIN || error == EINTR) return StreamIo::would_block;
        error_ = error;
        return StreamIo::failed;
    }

    UniqueFd socket_;
    int error_ = 0;
    char buffer_[read_size];
};

}  // namespace

std::unique_ptr<NetworkStream> make_socket_stream(UniqueFd socket) {
    return std::make_unique<SocketStream>(std::move(socket));
}

}  // namespace psi::connect
