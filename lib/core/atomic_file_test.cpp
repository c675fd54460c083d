#include "core/atomic_file.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "testing/test_support.hpp"

namespace psi {
namespace {

class AtomicFile : public ::testing::Test {
protected:
    psi::testing::TemporaryDirectory temporary_;
    const std::string directory_ = temporary_.path();
};

TEST_F(AtomicFile, WritesContentWithModeAndLeavesNoTemporaryFile) {
    const std::string path = directory_ + "/servers";
    write_file_atomically(path, "first", 0600);
    write_file_atomically(path, "second", 0640);
    EXPECT_EQ(read_file(path), "second");
    struct stat info {};
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777, 0640u);
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(directory_)) {
        (void)entry;
        ++files;
    }
    EXPECT_EQ(files, 2);  // the file and its lock
}

TEST_F(AtomicFile, FailureLeavesThePreviousContent) {
    const std::string path = directory_ + "/servers";
    write_file_atomically(path, "good", 0600);
    std::filesystem::create_directory(path + ".new");
    EXPECT_THROW(write_file_atomically(directory_ + "/missing/servers", "x", 0600), Error);
    EXPECT_EQ(read_file(path), "good");
}

TEST_F(AtomicFile, LockIsExclusive) {
    const std::string path = directory_ + "/store.lock";
    FileLock first(path);
    ASSERT_TRUE(first.is_held());
    FileLock second(path, FileLock::Wait::fail_if_held);
    EXPECT_FALSE(second.is_held());
}

TEST_F(AtomicFile, ReadingAMissingFileNamesIt) {
    try {
        read_file(directory_ + "/absent");
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("absent"), std::string::npos);
    }
}

}  // namespace
}  // namespace psi
