// Small helpers shared by the unit tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <initializer_list>
#include <string>

namespace psi::testing {

// Bytes from small integers: bytes({5, 1, 0, 1}).
inline std::string bytes(std::initializer_list<int> values) {
    std::string result;
    for (int value : values) result += static_cast<char>(value);
    return result;
}

// A fresh directory under /tmp, removed with everything in it.
class TemporaryDirectory {
public:
    TemporaryDirectory() {
        char pattern[] = "/tmp/psi-test-XXXXXX";
        path_ = ::mkdtemp(pattern);
    }
    ~TemporaryDirectory() { std::filesystem::remove_all(path_); }
    TemporaryDirectory(const TemporaryDirectory&) = delete;
    TemporaryDirectory& operator=(const TemporaryDirectory&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

}  // namespace psi::testing
