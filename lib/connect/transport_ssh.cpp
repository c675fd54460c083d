// SSH (docs/protocol.md §4): libssh runs over the TCP connection itself, in clear up to its key exchange.
#include <memory>

#include "connect/tcp_connect.hpp"
#include "connect/transport.hpp"

namespace psi::connect {
namespace {

class SshTransport final : public Transport {
public:
    UniqueFd open(const TransportRequest& request) override {
        UniqueFd socket = connect_tcp(request);
        dial_duration_ms_ = request.milliseconds_since_start();
        return socket;
    }

    void add_to(DialReport& report) const override { report.dial_duration_ms = dial_duration_ms_; }

private:
    std::int64_t dial_duration_ms_ = 0;
};

}  // namespace

std::unique_ptr<Transport> make_ssh_transport() { return std::make_unique<SshTransport>(); }

}  // namespace psi::connect
