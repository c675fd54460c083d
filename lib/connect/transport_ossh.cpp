// OSSH (docs/protocol.md §3): the obfuscator over the server's TCP socket.
#include <memory>

#include "connect/ossh_carrier.hpp"
#include "connect/tcp_connect.hpp"

namespace psi::connect {
namespace {

class OsshTransport final : public OsshCarrier {
    std::unique_ptr<NetworkStream> open_stream(const TransportRequest& request) override {
        return make_socket_stream(connect_tcp(request));
    }
};

}  // namespace

std::unique_ptr<Transport> make_ossh_transport() { return std::make_unique<OsshTransport>(); }

}  // namespace psi::connect
