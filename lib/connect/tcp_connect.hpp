// The TCP connection of the transports that run over TCP: to the entry's ipAddress and the
// protocol's port, which are addresses, never names (psi-connect resolves nothing itself).
#pragma once

#include "connect/transport.hpp"
#include "core/unique_fd.hpp"

namespace psi::connect {

// Connected, non-blocking, TCP_NODELAY, TCP_USER_TIMEOUT 30 s, watched by the request's
// cancellation. Throws psi::Error ("TCP: no answer in time", "the entry has no OSSH port").
UniqueFd connect_tcp(const TransportRequest& request);

}  // namespace psi::connect
