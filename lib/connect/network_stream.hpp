// The network side of a transport's pump: the server's TCP socket itself, or a layer carried
// over it (TLS). Non-blocking: the pump polls fd() for poll_events(), then receives and sends.
#pragma once

#include <poll.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/unique_fd.hpp"
#include "tls/client_session.hpp"

namespace psi::connect {

enum class StreamIo { progress, would_block, closed, failed };

class NetworkStream {
public:
    virtual ~NetworkStream() = default;

    virtual int fd() const = 0;
    // What to poll fd() for when the pump wants to read and/or write; a layer may have to read to
    // write or the other way round (TLS).
    virtual short poll_events(bool want_read, bool want_write) const {
        return static_cast<short>((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
    }
    // Bytes already taken off the socket but not yet received: poll would not wake for them.
    virtual bool has_buffered_input() const { return false; }
    // Points got at what arrived, valid until the next call.
    virtual StreamIo receive(std::string_view& got) = 0;
    // Sends a prefix of queue and erases what went.
    virtual StreamIo send_front(std::string& queue) = 0;
    // After StreamIo::failed: why ("Connection reset by peer", "TLS: ...").
    virtual std::string failure_reason() const = 0;
    // Ends the stream for both directions (the pump's last act).
    virtual void shut_down() = 0;
};

std::unique_ptr<NetworkStream> make_socket_stream(UniqueFd socket);

struct TransportRequest;
// TLS over the connected socket, the handshake done within the request's deadline (tls_stream.cpp).
// Throws DialError (handshake, timeout) naming what failed.
std::unique_ptr<NetworkStream> make_tls_stream(UniqueFd socket, const tls::ClientOptions& options,
                                               const TransportRequest& request);

}  // namespace psi::connect
