// psi-servers regions: how many servers pick can choose, per region.
#include <cstdio>
#include <map>

#include "core/error.hpp"
#include "core/output.hpp"
#include "servers/commands.hpp"
#include "servers/store_transaction.hpp"

namespace psi::servers {

int regions_command(const CommandLine& line, const Config& config) {
    const Store store = read_store(store_path(line.store_path, config));
    std::map<std::string, std::size_t> counts;
    for (const StoredEntry* entry : matching_servers(store, Selection{}))
        ++counts[entry->region.empty() ? "-" : entry->region];
    if (line.is_json) {
        json::Value document = json::Object{};
        for (const auto& [region, count] : counts) document.set(region, static_cast<std::uint64_t>(count));
        print_json(document);
    } else {
        for (const auto& [region, count] : counts) std::printf("%-6s %zu\n", region.c_str(), count);
    }
    return exit_status::ok;
}

}  // namespace psi::servers
