// How a command reaches the store file. A writer creates the store's directory when missing,
// works as the directory's owner (become_owner_of, core/privileges.hpp), takes the lock, loads,
// and writes the store back only when it commits: a failure before then, or no commit at all,
// leaves the previous store as it was. A reader works as the owner and loads, without the lock:
// a save replaces the file whole, so it reads the old store or the new one.
#pragma once

#include <string>

#include "core/config.hpp"
#include "servers/store.hpp"

namespace psi::servers {

// The store a command names: `given`, or DataRootDirectory/servers when it is empty.
std::string store_path(const std::string& given, const Config& config);

class StoreTransaction {
public:
    explicit StoreTransaction(const std::string& path);
    Store& store() { return store_; }
    void commit() const;  // saves the store atomically

private:
    std::string path_;
    StoreLock lock_;
    Store store_;
};

Store read_store(const std::string& path);

}  // namespace psi::servers
