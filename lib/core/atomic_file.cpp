#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <vector>

#include "core/error.hpp"

namespace psi {
namespace {

std::string directory_of(const std::string& path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// As root, a new file takes the owner of its directory (see open_private_file).
void give_to_directory_owner(int fd, const std::string& path) {
    struct stat directory {};
    if (::geteuid() != 0 || ::stat(directory_of(path).c_str(), &directory) != 0) return;
    if (::fchown(fd, directory.st_uid, directory.st_gid) != 0)
        throw_system_error("cannot give " + path + " to the owner of its directory", errno);
}

// An ostream over a descriptor: the temporary file is written through the descriptor
// mkostemp returned, never reopened by name (in a directory another user may write to, the
// name could be swapped for a symlink in between).
class FdOutput : public std::streambuf {
public:
    FdOutput(int fd, const std::string& what) : fd_(fd), what_(what) { setp(buffer_, buffer_ + sizeof buffer_); }
    ~FdOutput() override = default;

protected:
    int_type overflow(int_type character) override {
        flush_buffer();
        if (!traits_type::eq_int_type(character, traits_type::eof())) {
            *pptr() = traits_type::to_char_type(character);
            pbump(1);
        }
        return traits_type::not_eof(character);
    }
    int sync() override {
        flush_buffer();
        return 0;
    }

private:
    void flush_buffer() {
        write_all(fd_, std::string_view(pbase(), static_cast<std::size_t>(pptr() - pbase())), what_);
        setp(buffer_, buffer_ + sizeof buffer_);
    }
    int fd_;
    std::string what_;
    char buffer_[1 << 16];
};

}  // namespace

void write_all(int fd, std::string_view bytes, const std::string& what) {
    while (!bytes.empty()) {
        ssize_t written = ::write(fd, bytes.data(), bytes.size());
        if (written < 0) {
            if (errno == EINTR) continue;
            throw_system_error("cannot write " + what, errno);
        }
        bytes.remove_prefix(static_cast<std::size_t>(written));
    }
}

UniqueFd open_private_file(const std::string& path, int flags) {
    // Created here (O_EXCL), or else an existing regular file with a single link: never a
    // symlink, a device or a hard link to a file elsewhere.
    UniqueFd fd(::open(path.c_str(), flags | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.is_open()) {
        give_to_directory_owner(fd.get(), path);
        return fd;
    }
    if (errno != EEXIST) throw_system_error("cannot open " + path, errno);
    fd.reset(::open(path.c_str(), (flags & ~O_TRUNC) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
    if (!fd.is_open()) throw_system_error("cannot open " + path, errno);
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode) || info.st_nlink != 1)
        throw Error(path + " is not a plain file of its own (a link or a special file)");
    if ((flags & O_TRUNC) && ::ftruncate(fd.get(), 0) != 0) throw_system_error("cannot truncate " + path, errno);
    return fd;
}

FileLock::FileLock(const std::string& path, Wait wait) {
    UniqueFd fd = open_private_file(path, O_RDWR);
    int operation = LOCK_EX | (wait == Wait::fail_if_held ? LOCK_NB : 0);
    while (::flock(fd.get(), operation) != 0) {
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) return;  // not held
        throw_system_error("cannot lock " + path, errno);
    }
    fd_ = std::move(fd);
}

void write_file_atomically(const std::string& path, std::string_view content, mode_t mode) {
    FileLock lock(path + ".lock");
    replace_file(path, content, mode);
}

void replace_file(const std::string& path, std::string_view content, mode_t mode) {
    replace_file(path, mode, [&](std::ostream& output) { output.write(content.data(), static_cast<std::streamsize>(content.size())); });
}

void replace_file(const std::string& path, mode_t mode, const std::function<void(std::ostream&)>& write) {
    std::string temporary = path + ".XXXXXX";
    std::vector<char> name(temporary.begin(), temporary.end());
    name.push_back('\0');
    UniqueFd fd(::mkostemp(name.data(), O_CLOEXEC));
    if (!fd.is_open()) throw_system_error("cannot create a temporary file beside " + path, errno);
    temporary = name.data();
    try {
        if (::fchmod(fd.get(), mode) != 0) throw_system_error("cannot set the mode of " + temporary, errno);
        struct stat existing {};
        if (::lstat(path.c_str(), &existing) != 0) {
            give_to_directory_owner(fd.get(), path);
        } else if (::geteuid() == 0 && ::fchown(fd.get(), existing.st_uid, existing.st_gid) != 0) {
            throw_system_error("cannot keep the owner of " + path, errno);
        }
        {
            FdOutput buffer(fd.get(), temporary);
            std::ostream output(&buffer);
            output.exceptions(std::ios::badbit);
            write(output);
            output.flush();
        }
        if (::fsync(fd.get()) != 0) throw_system_error("cannot flush " + temporary, errno);
        fd.reset();
        if (::rename(temporary.c_str(), path.c_str()) != 0)
            throw_system_error("cannot replace " + path, errno);
    } catch (...) {
        ::unlink(temporary.c_str());
        throw;
    }
    UniqueFd directory(::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (directory.is_open()) ::fsync(directory.get());
}

std::string read_all(int fd, const std::string& what, std::size_t max_bytes) {
    std::string content;
    char buffer[65536];
    while (true) {
        ssize_t count = ::read(fd, buffer, sizeof buffer);
        if (count < 0) {
            if (errno == EINTR) continue;
            throw_system_error("cannot read " + what, errno);
        }
        if (count == 0) break;
        if (content.size() + static_cast<std::size_t>(count) > max_bytes)
            throw Error(what + " is larger than " + std::to_string(max_bytes) + " bytes");
        content.append(buffer, static_cast<std::size_t>(count));
    }
    return content;
}

std::string read_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.is_open()) throw_system_error("cannot read " + path, errno);
    return read_all(fd.get(), path);
}

UniqueFd memory_file(const char* name, std::string_view text) {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
    if (!fd.is_open()) throw_system_error("memfd_create", errno);
    write_all(fd.get(), text, name);
    if (::lseek(fd.get(), 0, SEEK_SET) != 0) throw_system_error("lseek", errno);
    return fd;
}

std::optional<std::string> read_file_if_readable(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.is_open()) return std::nullopt;
    try {
        return read_all(fd.get(), path);
    } catch (const Error&) {
        return std::nullopt;  // gone while it was read (a process's /proc file, say)
    }
}

}  // namespace psi
