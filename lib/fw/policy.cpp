#include "fw/policy.hpp"

#include "core/error.hpp"
#include "core/privileges.hpp"
#include "tun/address_plan.hpp"

namespace psi::fw {

const char* mode_name(Mode mode) { return mode == Mode::tunnel ? "tunnel" : "blocked"; }

Policy make_policy(const Config& config, Mode mode) {
    Policy policy;
    policy.mode = mode;
    if (mode == Mode::tunnel) {
        policy.tunnel_uid = lookup_user(config.tunnel_user).uid;
        if (policy.tunnel_uid == 0) throw Error("TunnelUser must not be root: root would be let through", exit_status::usage);
    }
    policy.tun_name = config.tun_name;
    const tun::AddressPlan plan = tun::address_plan(config);
    policy.tun_address_ipv4 = plan.ipv4.address;
    policy.tun_address_ipv6 = plan.ipv6.address;
    policy.nat_source_ipv4 = plan.ipv4.nat_source;
    policy.nat_source_ipv6 = plan.ipv6.nat_source;
    policy.tun_network_ipv4 = plan.ipv4.network;
    policy.tun_network_ipv6 = plan.ipv6.network;
    policy.dns_ipv4 = plan.ipv4.dns;
    policy.dns_ipv6 = plan.ipv6.dns;
    policy.allow_lan = config.allow_lan;
    return policy;
}

}  // namespace psi::fw
