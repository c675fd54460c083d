#include "servers/store_transaction.hpp"

#include <sys/stat.h>

#include <cerrno>

#include "core/error.hpp"
#include "core/privileges.hpp"

namespace psi::servers {
namespace {

std::string directory_of(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// Creates the store's directory if needed, then works as its owner; returns `path`.
const std::string& enter_store_directory(const std::string& path) {
    const std::string directory = directory_of(path);
    if (::mkdir(directory.c_str(), 0750) != 0 && errno != EEXIST) throw_system_error("cannot create " + directory, errno);
    become_owner_of(directory);
    return path;
}

}  // namespace

std::string store_path(const std::string& given, const Config& config) {
    return given.empty() ? config.data_root_directory + "/servers" : given;
}

StoreTransaction::StoreTransaction(const std::string& path)
    : path_(enter_store_directory(path)), lock_(path_, FileLock::Wait::block), store_(Store::load(path_)) {}

void StoreTransaction::commit() const { store_.save(path_); }

Store read_store(const std::string& path) {
    become_owner_of(directory_of(path));
    return Store::load(path);
}

}  // namespace psi::servers
