// How a dial reaches a server over one tunnel protocol (docs/protocol.md §3): a transport opens the
// byte stream that libssh then runs SSH over, and carries it for as long as the tunnel lives;
// libssh never knows what carries its bytes. One file per transport (transport_<name>.cpp);
// protocols.cpp says which protocol each one carries.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "connect/cancellation.hpp"
#include "connect/psiphon_api.hpp"
#include "core/unique_fd.hpp"
#include "servers/server_entry.hpp"

namespace psi::connect {

struct TransportRequest {
    const servers::ServerEntry& entry;
    const std::string& protocol;  // the entry's port and capability for it: ServerEntry::dial_port
    std::chrono::steady_clock::time_point started;  // the dial's start
    std::chrono::steady_clock::time_point deadline;
    Cancellation& cancellation;  // watches every descriptor the transport waits on

    int milliseconds_left() const {
        const auto left = deadline - std::chrono::steady_clock::now();
        return static_cast<int>(std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(left).count()));
    }
    std::int64_t milliseconds_since_start() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started)
            .count();
    }
};

class Transport {
public:
    virtual ~Transport() = default;

    // Connects, blocking until the deadline at most, and returns the descriptor libssh reads and
    // writes, non-blocking: libssh polls before it reads or writes, and a blocking send of its
    // whole output buffer would stall the proxy's event loop later. Throws psi::Error with a
    // one-line reason ("TCP: Connection refused").
    virtual UniqueFd open(const TransportRequest& request) = 0;
    // What the handshake reports of it (DialReport): dial_duration_ms, upstream_ossh_padding, ...
    virtual void add_to(DialReport& report) const = 0;
    // Why it stopped carrying bytes on its own, once open: "" while it carries them, and always
    // for a transport whose stream is the server's socket itself.
    virtual std::string failure() const { return std::string(); }
};

// Each defined in its transport's file.
std::unique_ptr<Transport> make_ssh_transport();
std::unique_ptr<Transport> make_ossh_transport();
std::unique_ptr<Transport> make_tls_ossh_transport();

}  // namespace psi::connect
