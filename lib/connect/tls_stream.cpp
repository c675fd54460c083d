// A NetworkStream of TLS records over the server's socket (tls::ClientSession).
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "connect/dial_error.hpp"
#include "connect/network_stream.hpp"
#include "connect/transport.hpp"

namespace psi::connect {
namespace {

constexpr std::size_t read_size = 64 * 1024;
constexpr std::size_t record_size = 16 * 1024;

class TlsStream final : public NetworkStream {
public:
    TlsStream(UniqueFd socket, const tls::ClientOptions& options) : socket_(std::move(socket)), tls_(socket_.get(), options) {}

    void handshake(const TransportRequest& request) {
        for (;;) {
            bool is_done = false;
            try {
                is_done = tls_.handshake_step();
            } catch (const Error& error) {
                request.cancellation.throw_if_cancelled();
                throw DialError(servers::FailureClass::handshake, error.what());
            }
            if (is_done) return;
            pollfd wait{socket_.get(), static_cast<short>(tls_.is_waiting_to_write() ? POLLOUT : POLLIN), 0};
            const int ready = ::poll(&wait, 1, request.milliseconds_left());
            request.cancellation.throw_if_cancelled();
            if (ready == 0) throw DialError(servers::FailureClass::timeout, "TLS: no handshake in time");
            if (ready < 0 && errno != EINTR) throw Error(std::string("poll: ") + std::strerror(errno));
        }
    }

    std::string negotiated() const { return tls_.negotiated(); }

    int fd() const override { return socket_.get(); }

    short poll_events(bool want_read, bool want_write) const override {
        short events = 0;
        if (want_read) events |= is_read_waiting_to_write_ ? POLLOUT : POLLIN;
        if (want_write || is_send_pending_) events |= POLLOUT;
        return events;
    }

    bool has_buffered_input() const override { return gnutls_record_check_pending(tls_.get()) > 0; }

    StreamIo receive(std::string_view& got) override {
        std::size_t filled = 0;
        StreamIo io = StreamIo::would_block;
        while (filled + record_size <= sizeof buffer_) {
            const ssize_t n = gnutls_record_recv(tls_.get(), buffer_ + filled, sizeof buffer_ - filled);
            if (n > 0) {
                filled += static_cast<std::size_t>(n);
                io = StreamIo::progress;
                continue;
            }
            is_read_waiting_to_write_ = false;
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                is_read_waiting_to_write_ = tls_.is_waiting_to_write();
                break;
            }
            if (filled) break;  // the end or the failure shows at the next call
            if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) return StreamIo::closed;
            failure_ = gnutls_strerror(static_cast<int>(n));
            return StreamIo::failed;
        }
        got = std::string_view(buffer_, filled);
        return io;
    }

    StreamIo send_front(std::string& queue) override {
        StreamIo io = StreamIo::would_block;
        while (!queue.empty()) {
            // After GNUTLS_E_AGAIN GnuTLS wants the same call again, or (nullptr, 0) to flush it.
            const ssize_t n = is_send_pending_ ? gnutls_record_send(tls_.get(), nullptr, 0)
                                               : gnutls_record_send(tls_.get(), queue.data(),
                                                                    std::min(queue.size(), record_size));
            if (n > 0) {
                is_send_pending_ = false;
                queue.erase(0, static_cast<std::size_t>(n));
                io = StreamIo::progress;
                continue;
            }
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
                is_send_pending_ = true;
                return io;
            }
            failure_ = gnutls_strerror(static_cast<int>(n));
            return StreamIo::failed;
        }
        return io;
    }

    std::string failure_reason() const override { return "TLS: " + failure_; }

    void shut_down() override { ::shutdown(socket_.get(), SHUT_RDWR); }

private:
    UniqueFd socket_;
    tls::ClientSession tls_;
    bool is_read_waiting_to_write_ = false;
    bool is_send_pending_ = false;
    std::string failure_;
    char buffer_[read_size];
};

}  // namespace

std::unique_ptr<NetworkStream> make_tls_stream(UniqueFd socket, const tls::ClientOptions& options,
                                               const TransportRequest& request) {
    auto stream = std::make_unique<TlsStream>(std::move(socket), options);
    stream->handshake(request);
    return stream;
}

}  // namespace psi::connect
