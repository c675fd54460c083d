// psi-servers show: one stored entry as JSON, its secrets redacted unless asked.
#include <set>

#include "core/error.hpp"
#include "core/output.hpp"
#include "servers/commands.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {
namespace {

// Entry fields that let anyone use or impersonate the server.
const std::set<std::string> secret_fields = {"sshPassword", "sshObfuscatedKey", "webServerSecret",
                                             "sshShadowsocksKey", "meekObfuscatedKey",
                                             "tacticsRequestObfuscatedKey"};

}  // namespace

int show_command(const CommandLine& line, const Config& config) {
    const Store store = read_store(store_path(line.store_path, config));
    json::Value fields = stored_entry_or_fail(store, line.address).entry().fields;
    if (!line.is_secret_shown)
        for (auto& [key, value] : fields.as_object())
            if (secret_fields.count(key)) value = "[redacted: --secrets shows it]";
    print_json(fields);
    return exit_status::ok;
}

}  // namespace psi::servers
