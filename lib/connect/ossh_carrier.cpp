#include "connect/ossh_carrier.hpp"

namespace psi::connect {

UniqueFd OsshCarrier::open(const TransportRequest& request) {
    std::unique_ptr<NetworkStream> stream = open_stream(request);
    dial_duration_ms_ = request.milliseconds_since_start();
    OsshOverStream ossh = start_ossh(std::move(stream), request);
    padding_length_ = ossh.padding_length;
    pump_ = std::move(ossh.pump);
    return std::move(ossh.libssh_side);
}

void OsshCarrier::add_to(DialReport& report) const {
    report.dial_duration_ms = dial_duration_ms_;
    report.upstream_ossh_padding = padding_length_;
}

std::string OsshCarrier::failure() const { return pump_ ? pump_->failure() : std::string(); }

}  // namespace psi::connect
