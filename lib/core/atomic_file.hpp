// Files that are either wholly old or wholly new: a temporary file in the same directory,
// fsync, rename, fsync of the directory; writers serialised by a lock file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <ostream>
#include <optional>
#include <string>
#include <string_view>

#include "core/unique_fd.hpp"

namespace psi {

// Files psi creates as root in a directory take that directory's owner and group, so that a
// store under /var/lib/psiphon (owned by psiphon-user) stays usable by the tunnel user.
// Opens (creating it with mode 600 if missing) a file for writing; returns the descriptor.
UniqueFd open_private_file(const std::string& path, int flags);

// An exclusive flock on `path` (created with mode 600 if missing), held while alive.
class FileLock {
public:
    enum class Wait { block, fail_if_held };
    explicit FileLock(const std::string& path, Wait wait = Wait::block);
    bool is_held() const { return fd_.is_open(); }

private:
    UniqueFd fd_;
};

// Replaces `path` with `content` atomically: a temporary file beside it, fsync, rename, fsync
// of the directory. Run as root over an existing file, the new one keeps its owner and group.
// The caller serialises writers (see write_file_atomically).
void replace_file(const std::string& path, std::string_view content, mode_t mode);
// The same, with the content written by `write` straight into the temporary file.
void replace_file(const std::string& path, mode_t mode, const std::function<void(std::ostream&)>& write);

// replace_file under the lock `path + ".lock"`.
void write_file_atomically(const std::string& path, std::string_view content, mode_t mode);

// Writes all of `bytes` to `fd`; throws psi::Error naming `what` on failure.
void write_all(int fd, std::string_view bytes, const std::string& what);

// Reads `fd` to its end, at most `max_bytes`; throws psi::Error naming `what`.
std::string read_all(int fd, const std::string& what, std::size_t max_bytes = SIZE_MAX);

// Reads a whole file; throws psi::Error naming the path.
std::string read_file(const std::string& path);
// An anonymous file in memory holding `text`, read from its start (a child's standard input).
UniqueFd memory_file(const char* name, std::string_view text);

// The same, or nothing when the file cannot be opened or read (gone, or never there).
std::optional<std::string> read_file_if_readable(const std::string& path);

}  // namespace psi
