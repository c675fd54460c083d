#include "fw/kill_switch.hpp"

#include <chrono>
#include <optional>

#include "core/error.hpp"
#include "core/log.hpp"
#include "fw/nft_context.hpp"
#include "fw/ruleset.hpp"

namespace psi::fw {

std::string KillSwitch::script(Mode mode) const {
    return render_replace_script(build_table(make_policy(config_, mode)));
}

Change KillSwitch::apply(Mode mode) {
    const Table table = build_table(make_policy(config_, mode));
    // Rendering the expected table needs a private namespace and takes tens of milliseconds: with
    // no table in the kernel (at boot, or after someone removed it) the rules are loaded first
    // and checked after. If rendering is refused, the table is still loaded (protection first)
    // and the failure to compare is reported afterwards.
    const bool was_loaded = read_kernel_table().has_value();
    std::optional<ListedTable> expected;
    std::string render_error;
    const auto render = [&] {
        try {
            expected = render_expected({table}).front();
        } catch (const Error& error) {
            render_error = error.what();
        }
    };
    if (was_loaded) {
        render();
        if (auto current = read_kernel_table(); expected && current && compare_tables(*expected, *current).empty()) {
            log::debug(std::string("the kernel already holds the ") + mode_name(mode) + " policy");
            return Change::unchanged;
        }
    }

    const auto start = std::chrono::steady_clock::now();
    NftContext().run(render_replace_script(table));
    const auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
    log::debug(std::string("loaded the ") + mode_name(mode) + " policy in one transaction (" +
               std::to_string(elapsed.count()) + " ms)");

    if (!was_loaded) render();
    if (!expected) throw Error("the kill switch is loaded but could not be checked: " + render_error);
    auto loaded = read_kernel_table();
    if (!loaded) throw Error("the kill switch table is absent right after loading it");
    auto differences = compare_tables(*expected, *loaded);
    if (!differences.empty())
        throw Error("the kernel holds a different table than the one loaded: " + differences.front());
    return Change::applied;
}

bool KillSwitch::remove() {
    NftContext nft;
    if (!nft.list_table_json(table_family, table_name)) return false;
    nft.run(render_delete_script());
    return true;
}

KillSwitchStatus KillSwitch::status() const {
    KillSwitchStatus status;
    auto current = read_kernel_table();
    if (!current) return status;
    status.is_loaded = true;
    status.rejected_packets = rejected_packets(*current);

    std::vector<Mode> modes{Mode::blocked};
    std::vector<Table> tables{build_table(make_policy(config_, Mode::blocked))};
    std::optional<std::string> tunnel_user_error;
    try {
        tables.insert(tables.begin(), build_table(make_policy(config_, Mode::tunnel)));
        modes.insert(modes.begin(), Mode::tunnel);
    } catch (const Error& error) {
        tunnel_user_error = error.what();
    }
    const std::vector<ListedTable> expected = render_expected(tables);

    std::optional<std::vector<std::string>> closest;
    for (std::size_t i = 0; i < modes.size(); ++i) {
        auto differences = compare_tables(expected[i], *current);
        if (differences.empty()) {
            status.mode = modes[i];
            return status;
        }
        if (!closest || differences.size() < closest->size()) closest = std::move(differences);
    }
    status.differences = std::move(*closest);
    if (tunnel_user_error) status.differences.push_back(*tunnel_user_error);
    return status;
}

}  // namespace psi::fw
