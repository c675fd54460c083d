#include "tun/tun_device.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/unique_fd.hpp"

namespace psi::tun {

bool interface_exists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

long tun_owner(const std::string& name) {
    try {
        return std::stol(read_file("/sys/class/net/" + name + "/owner"));
    } catch (const std::exception&) {
        return -1;
    }
}

namespace {

// IFF_TUN in the device's flags, as opposed to a TAP device.
bool is_layer3_tun(const std::string& name) {
    try {
        return (std::stoul(read_file("/sys/class/net/" + name + "/tun_flags"), nullptr, 16) & IFF_TUN) != 0;
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

UniqueFd attach_tun(const std::string& name, UniqueFd tun_file, TunFraming framing) {
    const bool has_header = framing == TunFraming::virtio_net_header;
    if (!tun_file.is_open()) tun_file.reset(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!tun_file.is_open()) throw_system_error("cannot open /dev/net/tun", errno);
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    request.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (has_header ? IFF_VNET_HDR : 0));
    if (::ioctl(tun_file.get(), TUNSETIFF, &request) != 0) {
        const int error = errno;
        if (error == EPERM)
            throw Error("cannot attach to " + name + ": it belongs to another user (psi-tun up creates it for the "
                        "tunnel user)");
        throw_system_error("cannot attach to " + name, error);
    }
    // The offloads belong to the device and outlive the last attachment: set them either way.
    if (::ioctl(tun_file.get(), TUNSETOFFLOAD, has_header ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 : 0) != 0)
        throw_system_error("cannot set the offloads of " + name, errno);
    const int flags = ::fcntl(tun_file.get(), F_GETFL);
    if (flags < 0 || ::fcntl(tun_file.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        throw_system_error("cannot make " + name + " non-blocking", errno);
    return tun_file;
}

UniqueFd attach_users_tun(const std::string& name, const UserIdentity& user, TunFraming framing) {
    if (!interface_exists(name)) throw Error(name + " does not exist: run psi-tun up first");
    if (tun_owner(name) != static_cast<long>(user.uid))
        throw Error(name + " is not a TUN of " + user.name + "'s (psi-tun up makes it so)");
    UniqueFd tun = attach_tun(name, UniqueFd(), framing);
    if (!is_persistent(tun.get()) || tun_owner(name) != static_cast<long>(user.uid))
        throw Error(name + " changed while it was being attached to; run psi-tun up");
    return tun;
}

bool is_persistent(int tun_file) {
    ifreq request{};
    return ::ioctl(tun_file, TUNGETIFF, &request) == 0 && (request.ifr_flags & IFF_PERSIST);
}

bool create_persistent_tun(const std::string& name, uid_t owner, gid_t group) {
    if (interface_exists(name)) {
        const long current = tun_owner(name);
        if (current < 0 || !is_layer3_tun(name))
            throw Error(name + " exists and is not a TUN device; remove it or set TunName");
        if (current != static_cast<long>(owner))
            throw Error(name + " exists but belongs to uid " + std::to_string(current) + ", not the tunnel user (uid " +
                        std::to_string(owner) + "); psi-tun down, or ip link del " + name);
        return false;
    }
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
    if (!fd.is_open()) throw_system_error("cannot open /dev/net/tun", errno);
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (::ioctl(fd.get(), TUNSETIFF, &request) != 0) throw_system_error("cannot create " + name, errno);
    if (::ioctl(fd.get(), TUNSETOWNER, static_cast<unsigned long>(owner)) != 0 ||
        ::ioctl(fd.get(), TUNSETGROUP, static_cast<unsigned long>(group)) != 0 ||
        ::ioctl(fd.get(), TUNSETPERSIST, 1UL) != 0)
        throw_system_error("cannot make " + name + " persistent and the tunnel user's", errno);
    return true;
}

}  // namespace psi::tun
