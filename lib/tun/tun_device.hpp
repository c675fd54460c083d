// The persistent TUN device, owned by the tunnel user so that the packet engine (or
// psi-connect --tun) attaches to it without any capability.
#pragma once

#include <sys/types.h>

#include <string>

namespace psi::tun {

bool interface_exists(const std::string& name);

// Creates the device persistent and owned by uid:gid; false when it already existed with
// that owner. Throws psi::Error when a device of that name exists with another owner or type.
bool create_persistent_tun(const std::string& name, uid_t owner, gid_t group);

// uid of the owner of a TUN device (from sysfs), or -1 when it is not a TUN device.
long tun_owner(const std::string& name);

}  // namespace psi::tun
