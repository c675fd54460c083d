// Dropping from root to an unprivileged user with an explicit, usually empty, capability set.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <sys/capability.h>

namespace psi {

struct UserIdentity {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

// Looks up a user by name, or accepts a numeric uid; the group by name or number
// (empty: the user's primary group). Throws psi::Error naming what does not exist.
UserIdentity lookup_user(const std::string& user, const std::string& group = "");

// Becomes `identity` for good: no supplementary groups, real/effective/saved ids changed,
// exactly `keep` in the permitted and effective sets, nothing inheritable or ambient, the
// bounding set emptied of everything else, and no_new_privs. Verifies that root cannot be
// regained. Throws psi::Error if any step fails; the caller must then exit.
void drop_privileges(const UserIdentity& identity, const std::vector<cap_value_t>& keep = {});

// Root never works inside a directory that another user controls (a symlink or a hard link
// placed there could lead it to read or write elsewhere): when running as root and
// `directory` belongs to another user, become that user, with no capability, for good.
void become_owner_of(const std::string& directory);

// Raises the soft limit of open files to the hard one; as root (before dropping privileges),
// first the hard one to at least `wanted`. A proxy holds two descriptors per connection.
void raise_open_file_limit(rlim_t wanted);

// The capabilities of the calling thread, as cap_to_text shows them ("=" when empty).
std::string current_capabilities();

}  // namespace psi
