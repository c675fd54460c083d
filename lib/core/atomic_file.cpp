#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
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

}  // namespace

UniqueFd open_private_file(const std::string& path, int flags) {
    const bool is_new = ::access(path.c_str(), F_OK) != 0;
    UniqueFd fd(::open(path.c_str(), flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd.is_open()) throw_system_error("cannot open " + path, errno);
    if (is_new) give_to_directory_owner(fd.get(), path);
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
        if (::stat(path.c_str(), &existing) != 0) {
            give_to_directory_owner(fd.get(), path);
        } else if (::geteuid() == 0 && ::fchown(fd.get(), existing.st_uid, existing.st_gid) != 0) {
            throw_system_error("cannot keep the owner of " + path, errno);
        }
        {
            std::ofstream output(temporary, std::ios::binary | std::ios::trunc);
            write(output);
            output.flush();
            if (!output) throw Error("cannot write " + temporary);
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

std::string read_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.is_open()) throw_system_error("cannot read " + path, errno);
    std::string content;
    char buffer[65536];
    while (true) {
        ssize_t count = ::read(fd.get(), buffer, sizeof buffer);
        if (count < 0) {
            if (errno == EINTR) continue;
            throw_system_error("cannot read " + path, errno);
        }
        if (count == 0) break;
        content.append(buffer, static_cast<std::size_t>(count));
    }
    return content;
}

}  // namespace psi
