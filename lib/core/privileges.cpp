#include "core/privileges.hpp"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>

#include "core/error.hpp"

namespace psi {
namespace {

struct CapFree {
    void operator()(void* pointer) const { cap_free(pointer); }
};
using CapState = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

std::optional<unsigned> parse_id(const std::string& text) {
    unsigned id = 0;
    auto result = std::from_chars(text.data(), text.data() + text.size(), id);
    if (text.empty() || result.ec != std::errc() || result.ptr != text.data() + text.size())
        return std::nullopt;
    return id;
}

void check(int result, const char* step) {
    if (result != 0) throw_system_error(std::string("cannot drop privileges (") + step + ")", errno);
}

}  // namespace

UserIdentity lookup_user(const std::string& user, const std::string& group) {
    UserIdentity identity;
    if (auto uid = parse_id(user)) {
        identity = {user, *uid, *uid};
    } else {
        const passwd* entry = ::getpwnam(user.c_str());
        if (!entry) throw Error("user " + user + " does not exist (sudo make install creates it)");
        identity = {user, entry->pw_uid, entry->pw_gid};
    }
    if (group.empty()) return identity;
    if (auto gid = parse_id(group)) {
        identity.gid = *gid;
    } else {
        const struct group* entry = ::getgrnam(group.c_str());
        if (!entry) throw Error("group " + group + " does not exist (sudo make install creates it)");
        identity.gid = entry->gr_gid;
    }
    return identity;
}

void drop_privileges(const UserIdentity& identity, const std::vector<cap_value_t>& keep) {
    if (identity.uid == 0) throw Error("refusing to drop privileges to uid 0");
    for (cap_value_t capability = 0; capability < static_cast<cap_value_t>(cap_max_bits()); ++capability) {
        bool is_kept = std::find(keep.begin(), keep.end(), capability) != keep.end();
        if (!is_kept && cap_drop_bound(capability) != 0 && errno != EINVAL) check(-1, "bounding set");
    }
    check(::prctl(PR_SET_KEEPCAPS, keep.empty() ? 0 : 1, 0, 0, 0), "keepcaps");
    // The kernel clears the parent-death signal when the credentials change: it is set again,
    // so that a program psi's supervisor started still ends with the supervisor.
    int parent_death_signal = 0;
    check(::prctl(PR_GET_PDEATHSIG, &parent_death_signal, 0, 0, 0), "parent-death signal");
    const pid_t parent = ::getppid();
    check(::setgroups(0, nullptr), "setgroups");
    check(::setresgid(identity.gid, identity.gid, identity.gid), "setresgid");
    check(::setresuid(identity.uid, identity.uid, identity.uid), "setresuid");
    if (parent_death_signal != 0) {
        check(::prctl(PR_SET_PDEATHSIG, parent_death_signal, 0, 0, 0), "parent-death signal");
        if (::getppid() != parent) ::raise(parent_death_signal);  // the parent ended meanwhile
    }

    CapState capabilities(cap_init());
    if (!capabilities) throw_system_error("cannot drop privileges (cap_init)", errno);
    if (!keep.empty()) {
        check(cap_set_flag(capabilities.get(), CAP_PERMITTED, static_cast<int>(keep.size()), keep.data(), CAP_SET), "cap_set_flag");
        check(cap_set_flag(capabilities.get(), CAP_EFFECTIVE, static_cast<int>(keep.size()), keep.data(), CAP_SET), "cap_set_flag");
    }
    check(cap_set_proc(capabilities.get()), "cap_set_proc");
    check(cap_reset_ambient(), "ambient");
    check(::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "keepcaps");
    check(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");

    if (::setuid(0) == 0 || ::geteuid() != identity.uid || ::getegid() != identity.gid)
        throw Error("cannot drop privileges: root could be regained");
}

void become_owner_of(const std::string& directory) {
    if (::geteuid() != 0) return;
    struct stat info {};
    if (::lstat(directory.c_str(), &info) != 0) {
        if (errno == ENOENT) return;  // nothing there that anyone controls
        throw_system_error("cannot inspect " + directory, errno);
    }
    if (!S_ISDIR(info.st_mode)) throw Error(directory + " is not a directory");
    if (info.st_uid == 0) return;
    drop_privileges(UserIdentity{"owner of " + directory, info.st_uid, info.st_gid});
}

std::string current_capabilities() {
    CapState capabilities(cap_get_proc());
    if (!capabilities) return "?";
    char* text = cap_to_text(capabilities.get(), nullptr);
    std::string result = text ? text : "?";
    cap_free(text);
    return result;
}

void raise_open_file_limit(rlim_t wanted) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    if (::geteuid() == 0 && limit.rlim_max < wanted) limit.rlim_max = wanted;
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace psi
