// The engine's NAT table (docs/packet-engine.md §3.5): each TCP flow from an application gets a port of the
// NAT source address; a released port waits out the listener side's TIME_WAIT in quarantine
// before it is used again, so that no new flow ever meets an old connection's state.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>

#include "packet/packet.hpp"

namespace psi::engine {

struct Flow {
    packet::Endpoint application;  // the app's source, as it sent its SYN
    packet::Endpoint destination;  // what the app connected to (passed on as an address, never resolved)
    friend auto operator<=>(const Flow&, const Flow&) = default;
};

class NatTable {
public:
    using Clock = std::chrono::steady_clock;

    NatTable(std::uint16_t first_port, std::uint16_t last_port, Clock::duration quarantine);

    // A port for a new flow, or nullopt when every port is in use or in quarantine.
    std::optional<std::uint16_t> allocate(const Flow& flow, Clock::time_point now);
    std::optional<std::uint16_t> port_of(const Flow& flow) const;
    const Flow* flow_of(std::uint16_t port) const;
    // Ends a flow; its port is reusable once `quarantine` has passed.
    void release(std::uint16_t port, Clock::time_point now);

    std::size_t active() const { return by_port_.size(); }
    std::size_t quarantined() const { return quarantine_.size(); }

private:
    void expire_quarantine(Clock::time_point now);

    std::uint16_t first_port_, last_port_;
    Clock::duration quarantine_time_;
    std::deque<std::uint16_t> free_ports_;  // FIFO: the port free the longest goes first
    std::deque<std::pair<Clock::time_point, std::uint16_t>> quarantine_;
    std::map<std::uint16_t, Flow> by_port_;
    std::map<Flow, std::uint16_t> by_flow_;
};

}  // namespace psi::engine
