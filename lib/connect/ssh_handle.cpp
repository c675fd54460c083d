#include "connect/ssh_handle.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace psi::connect {

SshClientSession::SshClientSession(int descriptor)
    : duplicate_(::fcntl(descriptor, F_DUPFD_CLOEXEC, 0)), session_(ssh_new()) {
    if (!duplicate_.is_open()) throw Error(std::string("dup: ") + std::strerror(errno));
    if (!session_) throw Error("out of memory for an SSH session");
    socket_t fd = duplicate_.get();
    if (ssh_options_set(session_.get(), SSH_OPTIONS_FD, &fd) != SSH_OK)
        throw Error("libssh refused the tunnel's descriptor");
}

int SshClientSession::connect() {
    duplicate_.release();  // ssh_connect() takes it before its first read or write
    return ssh_connect(session_.get());
}

void SshClientSession::disconnect() {
    const socket_t held = ssh_get_fd(session_.get());  // none once libssh closed it after a failed write
    ssh_disconnect(session_.get());
    if (held != SSH_INVALID_SOCKET) ::close(held);
}

SshSessionEvent::SshSessionEvent(ssh_session session) : session_(session), event_(ssh_event_new()) {
    if (!event_) throw Error("out of memory for the tunnel's events");
    if (ssh_event_add_session(event_.get(), session_) != SSH_OK) throw Error("the tunnel's session cannot be polled");
}

SshSessionEvent::~SshSessionEvent() { ssh_event_remove_session(event_.get(), session_); }

}  // namespace psi::connect
