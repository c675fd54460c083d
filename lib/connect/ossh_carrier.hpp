// What every transport that carries OSSH shares (OSSH, TLS-OSSH): it opens its network stream,
// then runs OSSH over it (start_ossh) and reports the dial's duration and the OSSH padding.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "connect/network_stream.hpp"
#include "connect/ossh_pump.hpp"
#include "connect/transport.hpp"

namespace psi::connect {

class OsshCarrier : public Transport {
public:
    UniqueFd open(const TransportRequest& request) final;
    void add_to(DialReport& report) const final;
    std::string failure() const final;

protected:
    // The connected stream that carries OSSH: the dial's duration ends when it stands.
    virtual std::unique_ptr<NetworkStream> open_stream(const TransportRequest& request) = 0;

private:
    std::int64_t dial_duration_ms_ = 0;
    std::optional<std::size_t> padding_length_;
    std::unique_ptr<OsshPump> pump_;
};

}  // namespace psi::connect
