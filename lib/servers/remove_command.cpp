// psi-servers remove: one server out of the store.
#include <cstdio>

#include "core/error.hpp"
#include "core/output.hpp"
#include "servers/commands.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {

int remove_command(const CommandLine& line, const Config& config) {
    StoreTransaction transaction(store_path(line.store_path, config));
    stored_entry_or_fail(transaction.store(), line.address);
    transaction.store().remove(line.address);
    transaction.commit();
    if (line.is_json) print_json(json::Object{{"removed", line.address}});
    else std::printf("removed %s\n", line.address.c_str());
    return exit_status::ok;
}

}  // namespace psi::servers
