// Signals as events of an event loop: the given signals are blocked for the whole process and
// read from a signalfd instead, so that no handler ever runs in the middle of the loop's work.
// SIGPIPE is ignored as well: writing to a closed socket, pipe or splice(2) destination is then
// an EPIPE error to handle, not the end of the program.
#pragma once

#include <initializer_list>

#include "core/unique_fd.hpp"

namespace psi {

// Call before any thread starts (threads inherit the mask). Throws psi::Error.
UniqueFd receive_signals(std::initializer_list<int> signals);

}  // namespace psi
