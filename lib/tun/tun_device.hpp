// The persistent TUN device, owned by the tunnel user so that the packet engine (or
// psi-connect --tun) attaches to it without any capability.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "core/privileges.hpp"
#include "core/unique_fd.hpp"

namespace psi::tun {

bool interface_exists(const std::string& name);

// Creates the device persistent and owned by uid:gid; false when it already existed with
// that owner. Throws psi::Error when a device of that name exists with another owner or type.
bool create_persistent_tun(const std::string& name, uid_t owner, gid_t group);

enum class TunFraming {
    virtio_net_header,  // a virtio-net header before every packet, checksum and TSO offloads on (docs/packet-engine.md §3.7)
    plain,              // whole packets of at most the MTU, checksums complete, no offloads (psi-connect --tun)
};

// Attaches to the persistent TUN `name` (its owner needs no capability), non-blocking.
// `tun_file` is an open /dev/net/tun, or empty to open it here.
UniqueFd attach_tun(const std::string& name, UniqueFd tun_file = {},
                    TunFraming framing = TunFraming::virtio_net_header);

// Attaches to the TUN that psi-tun up made for `user`, refusing any other: root could attach
// to any TUN, or create one by the name. Checked again after the attach, as the device may
// have been made anew in between.
UniqueFd attach_users_tun(const std::string& name, const UserIdentity& user, TunFraming framing);

// Whether the device `tun_file` is attached to is persistent (TUNGETIFF).
bool is_persistent(int tun_file);

// The virtio-net header's size (the default of TUNSETVNETHDRSZ).
inline constexpr std::size_t vnet_header_size = 10;

// uid of the owner of a TUN device (from sysfs), or -1 when it is not a TUN device.
long tun_owner(const std::string& name);

}  // namespace psi::tun
