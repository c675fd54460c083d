// OSSH (docs/protocol.md §3): the obfuscator over the server's TCP socket (start_ossh).
#include <memory>
#include <optional>

#include "connect/ossh_pump.hpp"
#include "connect/tcp_connect.hpp"
#include "connect/transport.hpp"

namespace psi::connect {
namespace {

class OsshTransport final : public Transport {
public:
    UniqueFd open(const TransportRequest& request) override {
        UniqueFd network = connect_tcp(request);
        dial_duration_ms_ = request.milliseconds_since_start();
        OsshOverStream ossh = start_ossh(make_socket_stream(std::move(network)), request);
        padding_length_ = ossh.padding_length;
        pump_ = std::move(ossh.pump);
        return std::move(ossh.libssh_side);
    }

    void add_to(DialReport& report) const override {
        report.dial_duration_ms = dial_duration_ms_;
        report.upstream_ossh_padding = padding_length_;
    }

    std::string failure() const override { return pump_ ? pump_->failure() : std::string(); }

private:
    std::int64_t dial_duration_ms_ = 0;
    std::optional<std::size_t> padding_length_;
    std::unique_ptr<OsshPump> pump_;
};

}  // namespace

std::unique_ptr<Transport> make_ossh_transport() { return std::make_unique<OsshTransport>(); }

}  // namespace psi::connect
