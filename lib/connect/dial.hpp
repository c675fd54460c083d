// One attempt to bring up a tunnel to one server over one protocol (docs/protocol.md §3-5): the
// protocol's transport opens the byte stream (transport.hpp); SSH over it, with the server's host
// key compared byte for byte with the entry's sshHostKey; password auth with the JSON payload;
// then psiphon-handshake. Blocking, in the caller's thread; cancel() from any thread ends it early.
#pragma once

#include <libssh/libssh.h>

#include <chrono>
#include <memory>
#include <string>

#include "connect/cancellation.hpp"
#include "connect/psiphon_api.hpp"
#include "connect/ssh_handle.hpp"
#include "connect/transport.hpp"
#include "core/unique_fd.hpp"
#include "servers/server_entry.hpp"

namespace psi::connect {

struct Candidate {
    servers::ServerEntry entry;
    std::string protocol;  // one psi speaks (protocols.hpp)
    std::size_t number = 0;  // its place in the dialling order of its round (the Establisher's)
    std::size_t count = 0;   // candidates in that round
    std::string label() const;  // "OSSH 192.0.2.1:443"
};

struct DialSettings {
    ClientIdentity identity;
    std::string session_id;          // one per run (docs/protocol.md §4)
    bool is_handshake = true;        // false: a generic SSH server, no Psiphon API
    std::string identity_file;       // public-key auth with this key instead of the password payload
    std::chrono::milliseconds timeout{20000};
    std::size_t established_tunnels_count = 0;  // for the handshake's metrics (DialReport)
    std::size_t server_entry_count = 0;
};

// An established tunnel: an authenticated SSH session (after the handshake, when asked for).
class Tunnel {
public:
    Tunnel(Candidate candidate, SshClientSession session, UniqueFd socket, std::unique_ptr<Transport> transport,
           HandshakeResponse handshake);
    ~Tunnel();  // SSH_MSG_DISCONNECT, then the session, the transport and the socket go, in that order
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    ssh_session session() const { return session_.get(); }
    int descriptor() const { return socket_.get(); }  // the one libssh reads and writes
    const Candidate& candidate() const { return candidate_; }
    const HandshakeResponse& handshake() const { return handshake_; }
    // Why the transport stopped carrying bytes, if it did.
    std::string transport_failure() const { return transport_->failure(); }

private:
    Candidate candidate_;
    UniqueFd socket_;
    std::unique_ptr<Transport> transport_;
    SshClientSession session_;  // destroyed before what carries its bytes
    HandshakeResponse handshake_;
};

class Dial {
public:
    Dial(Candidate candidate, const DialSettings& settings);
    // Throws psi::Error with a one-line reason ("host key does not match the entry", ...).
    std::unique_ptr<Tunnel> run();
    void cancel();

private:
    DialReport report(const Transport& transport) const;

    Candidate candidate_;
    const DialSettings& settings_;
    Cancellation cancellation_;
    std::string ssh_client_version_;
};

// Calls ssh_init() once for the process (the static library has no constructor doing it).
void initialize_libssh();

}  // namespace psi::connect
