#include "core/program_directory.hpp"

#include <unistd.h>

#include <climits>

#include "core/error.hpp"

namespace psi {

std::string program_directory() {
    char self[PATH_MAX];
    const ssize_t length = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) throw Error("cannot find the program's own path (/proc/self/exe)");
    const std::string path(self, static_cast<std::size_t>(length));
    return path.substr(0, path.rfind('/'));
}

}  // namespace psi
