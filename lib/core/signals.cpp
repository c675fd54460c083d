#include "core/signals.hpp"

#include <sys/signalfd.h>

#include <cerrno>
#include <csignal>

#include "core/error.hpp"

namespace psi {

UniqueFd receive_signals(std::initializer_list<int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (const int signal : signals) sigaddset(&set, signal);
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw_system_error("cannot block signals", errno);
    ::signal(SIGPIPE, SIG_IGN);
    UniqueFd fd(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd.is_open()) throw_system_error("cannot receive signals", errno);
    return fd;
}

}  // namespace psi
