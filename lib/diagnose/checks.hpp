// psi-diagnose's checks: each proves one part of the security state from what the kernel and
// the file system say, and when it fails, says how to fix it.
#pragma once

#include <string>
#include <vector>

#include "core/config.hpp"
#include "fw/leak_probe.hpp"

namespace psi::diagnose {

struct Check {
    std::string name;    // "kill switch", "TUN", ...
    bool passed = false;
    std::string detail;  // one line: what was found
    std::string fix;     // one line: what to do, when it failed
};

// The kill switch is loaded, identical to the expected table (policies drop included), and in
// the tunnel policy (the boot policy blocks everything: secure, but no tunnel).
Check check_kill_switch(const Config& config);
// TunName exists, is a TUN of the tunnel user's, is up, and has both of its addresses.
Check check_tun(const Config& config);
// Everyone but the tunnel user is routed into the TUN, IPv4 and IPv6, with the unreachable
// fallback behind it.
Check check_routing(const Config& config);
// The system resolves through the in-tunnel resolver only.
Check check_dns(const Config& config, const std::string& resolv_conf = "/etc/resolv.conf");
// The packet engine and psi-connect run as the tunnel user; every process of the tunnel user
// has no capability at all and no_new_privs.
// Only processes of the programs in `programs_directory` count.
std::vector<Check> check_processes(const Config& config, const std::string& programs_directory,
                                   const std::string& proc = "/proc");
// No user but root and the tunnel user listens on the local proxies' ports (any address): such
// a listener would receive what applications and the packet engine send to psi's proxies.
Check check_proxy_ports(const Config& config, const std::string& proc_net = "/proc/net");
// The config is root's and private, the programs root's and writable by no one else, the
// state directories owned as docs/architecture.md §2 says.
std::vector<Check> check_files(const Config& config, const std::string& programs_directory);
// As another user: TCP, UDP and DNS bound to each uplink refused; a DNS query through the
// tunnel answered.
std::vector<Check> check_leaks(const Config& config, const fw::ProbeTargets& targets);

}  // namespace psi::diagnose
