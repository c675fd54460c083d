#include "engine/nat_table.hpp"

#include <string>

#include "core/error.hpp"

namespace psi::engine {

NatTable::NatTable(std::uint16_t first_port, std::uint16_t last_port, Clock::duration quarantine)
    : first_port_(first_port), last_port_(last_port), quarantine_time_(quarantine) {
    if (first_port == 0 || first_port > last_port)
        throw Error("NAT ports " + std::to_string(first_port) + "-" + std::to_string(last_port) +
                    " are not a range of ports from 1 to 65535");
    if (quarantine < Clock::duration::zero()) throw Error("the NAT port quarantine cannot be negative");
    for (std::uint32_t port = first_port_; port <= last_port_; ++port)
        free_ports_.push_back(static_cast<std::uint16_t>(port));
}

std::optional<std::uint16_t> NatTable::allocate(const Flow& flow, Clock::time_point now) {
    if (const auto existing = port_of(flow)) return existing;
    expire_quarantine(now);
    if (free_ports_.empty()) return std::nullopt;
    const std::uint16_t port = free_ports_.front();
    free_ports_.pop_front();
    by_port_.emplace(port, flow);
    by_flow_.emplace(flow, port);
    return port;
}

std::optional<std::uint16_t> NatTable::port_of(const Flow& flow) const {
    const auto found = by_flow_.find(flow);
    if (found == by_flow_.end()) return std::nullopt;
    return found->second;
}

const Flow* NatTable::flow_of(std::uint16_t port) const {
    const auto found = by_port_.find(port);
    return found == by_port_.end() ? nullptr : &found->second;
}

void NatTable::release(std::uint16_t port, Clock::time_point now) {
    const auto found = by_port_.find(port);
    if (found == by_port_.end()) return;
    by_flow_.erase(found->second);
    by_port_.erase(found);
    quarantine_.emplace_back(now, port);
    expire_quarantine(now);
}

// Released ports are queued in the order they were released, so the front is always the first
// to come free. A caller whose clock went backwards only makes later ports wait longer.
void NatTable::expire_quarantine(Clock::time_point now) {
    while (!quarantine_.empty() && now - quarantine_.front().first >= quarantine_time_) {
        free_ports_.push_back(quarantine_.front().second);
        quarantine_.pop_front();
    }
}

}  // namespace psi::engine
