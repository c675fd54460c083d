#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

TEST_F(AtomicFile, ASymlinkInTheWayIsReplacedNotFollowed) {
    const std::string target = directory_ + "/precious";
    write_file_atomically(target, "keep me", 0600);
    const std::string path = directory_ + "/servers";
    ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0);
    replace_file(path, "store", 0600);
    EXPECT_EQ(read_file(target), "keep me");
    EXPECT_FALSE(std::filesystem::is_symlink(path));
    EXPECT_EQ(read_file(path), "store");
    // A lock or private file is never opened through a symlink either.
    ASSERT_EQ(::symlink(target.c_str(), (directory_ + "/servers.lock").c_str()), 0);
    EXPECT_THROW(FileLock(directory_ + "/servers.lock"), Error);
    EXPECT_EQ(read_file(target), "keep me");
}

TEST_F(AtomicFile, AHardLinkIsNeverOpenedAsAPrivateFile) {
    const std::string target = directory_ + "/precious";
    write_file_atomically(target, "keep me", 0600);
    ASSERT_EQ(::link(target.c_str(), (directory_ + "/part").c_str()), 0);
    EXPECT_THROW(open_private_file(directory_ + "/part", O_WRONLY | O_TRUNC), Error);
    EXPECT_EQ(read_file(target), "keep me");
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
