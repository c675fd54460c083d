// Owners for libssh 0.11 objects, each freed once and in the order libssh needs: a channel
// belongs to its session (ssh_free frees the channels left and their owners would then hold
// dangling pointers), so a channel's owner goes before its session's; an event lets go of its
// session before either is freed.
#pragma once

#include <libssh/libssh.h>

#include <memory>

#include "core/unique_fd.hpp"

namespace psi::connect {

struct SshSessionFree {
    void operator()(ssh_session session) const { ssh_free(session); }
};
struct SshChannelFree {
    void operator()(ssh_channel channel) const { ssh_channel_free(channel); }
};
struct SshKeyFree {
    void operator()(ssh_key key) const { ssh_key_free(key); }
};
struct SshBufferFree {
    void operator()(ssh_buffer buffer) const { ssh_buffer_free(buffer); }
};
struct SshEventFree {
    void operator()(ssh_event event) const { ssh_event_free(event); }
};
struct SshStringFree {
    void operator()(char* text) const { ssh_string_free_char(text); }
};
using SshSession = std::unique_ptr<ssh_session_struct, SshSessionFree>;
using SshChannel = std::unique_ptr<ssh_channel_struct, SshChannelFree>;
using SshKey = std::unique_ptr<ssh_key_struct, SshKeyFree>;
using SshBuffer = std::unique_ptr<ssh_buffer_struct, SshBufferFree>;
using SshEvent = std::unique_ptr<ssh_event_struct, SshEventFree>;
using SshString = std::unique_ptr<char, SshStringFree>;  // text libssh allocated (ssh_pki_export_pubkey_base64)

// A client session over a descriptor that stays the caller's. From ssh_connect() on, libssh
// closes the descriptor it was given when a write to it fails or when a session still holding it
// is freed, but ssh_disconnect() lets go of it unclosed. So libssh gets a duplicate of its own,
// closed here when libssh did not close it, and the caller's descriptor (the one the event loop
// watches) is never closed under it.
class SshClientSession {
public:
    explicit SshClientSession(int descriptor);  // ssh_new() with SSH_OPTIONS_FD; throws psi::Error
    SshClientSession(SshClientSession&&) noexcept = default;
    SshClientSession& operator=(SshClientSession&&) noexcept = default;

    ssh_session get() const { return session_.get(); }
    int connect();  // ssh_connect(): from here the duplicate is libssh's to close
    void disconnect();  // ssh_disconnect() (SSH_MSG_DISCONNECT), then the duplicate is closed

private:
    UniqueFd duplicate_;  // until connect()
    SshSession session_;
};

// An event that polls one session (non-blocking use), taken out of the event before it is freed.
class SshSessionEvent {
public:
    explicit SshSessionEvent(ssh_session session);  // throws psi::Error
    ~SshSessionEvent();
    SshSessionEvent(const SshSessionEvent&) = delete;
    SshSessionEvent& operator=(const SshSessionEvent&) = delete;

    ssh_event get() const { return event_.get(); }

private:
    ssh_session session_;
    SshEvent event_;
};

}  // namespace psi::connect
