// The OSSH shim of docs/protocol.md §3.6: libssh speaks plain SSH over one end of a socketpair, and a
// thread moves the bytes between the other end and the network stream (the server's socket, or
// TLS over it) through the obfuscator
// (the preamble first, RC4 up to each side's NEWKEYS, raw after). Each direction is queued and
// bounded, so neither side can make it grow or block the other.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "connect/network_stream.hpp"
#include "connect/transport.hpp"
#include "core/unique_fd.hpp"
#include "ssh/obfuscator.hpp"

namespace psi::connect {

class OsshPump {
public:
    // Takes the connected network stream and the pump's end of the socketpair; starts at once.
    OsshPump(std::unique_ptr<NetworkStream> network, UniqueFd libssh_side, std::unique_ptr<ssh::ClientObfuscator> obfuscator,
             std::string preamble);
    ~OsshPump();
    OsshPump(const OsshPump&) = delete;
    OsshPump& operator=(const OsshPump&) = delete;

    // Ends the thread and closes both descriptors; libssh then reads end of file.
    void stop();
    // Why the pump ended on its own ("" while it runs or after stop()).
    std::string failure() const;

private:
    void run();
    void fail(std::string reason);

    std::unique_ptr<NetworkStream> network_;
    std::unique_ptr<NetworkStream> libssh_side_;
    UniqueFd wake_;
    std::unique_ptr<ssh::ClientObfuscator> obfuscator_;
    std::string to_network_;
    std::string to_libssh_;
    mutable std::mutex mutex_;
    std::string failure_;
    std::thread thread_;
};

// OSSH over a connected network stream, as every OSSH-carrying transport starts it: a fresh seed
// and random padding, the obfuscator keyed from the entry's sshObfuscatedKey, the pump running.
struct OsshOverStream {
    UniqueFd libssh_side;  // non-blocking, watched by the request's cancellation
    std::unique_ptr<OsshPump> pump;
    std::size_t padding_length = 0;
};
OsshOverStream start_ossh(std::unique_ptr<NetworkStream> network, const TransportRequest& request);

}  // namespace psi::connect
