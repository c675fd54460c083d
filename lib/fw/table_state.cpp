#include "fw/table_state.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "fw/nft_context.hpp"

namespace psi::fw {
namespace {

// Counter values change with traffic; the rule is the same rule whatever they say.
std::uint64_t strip_counters(json::Array& expressions) {
    std::uint64_t packets = 0;
    for (json::Value& expression : expressions) {
        json::Value* counter = expression.find("counter");
        if (!counter) continue;
        if (const json::Value* count = counter->find("packets"))
            packets += static_cast<std::uint64_t>(count->as_integer());
        *counter = nullptr;
    }
    return packets;
}

const std::string& string_member(const json::Value& object, const char* key) {
    static const std::string empty;
    const json::Value* value = object.find(key);
    return value && value->is_string() ? value->as_string() : empty;
}

ListedChain* find_chain(ListedTable& table, const std::string& name) {
    for (ListedChain& chain : table.chains)
        if (chain.name == name) return &chain;
    return nullptr;
}

std::string describe_chain(const ListedChain& chain) {
    return "type " + chain.type + " hook " + chain.hook + " priority " +
           std::to_string(chain.priority) + " policy " + chain.policy;
}

std::size_t count_of(const std::vector<ListedRule>& rules, const ListedRule& rule) {
    return static_cast<std::size_t>(std::count_if(rules.begin(), rules.end(),
                                                  [&](const ListedRule& other) { return other.match == rule.match; }));
}

// Chains are ordered lists: every rule must be there exactly as often as expected, and in order.
void compare_rules(const ListedChain& expected, const ListedChain& actual,
                   std::vector<std::string>& differences) {
    const std::string where = "chain " + expected.name + ": ";
    const std::size_t before = differences.size();
    for (std::size_t i = 0; i < expected.rules.size(); ++i) {
        const ListedRule& rule = expected.rules[i];
        if (count_of(expected.rules, rule) > count_of(actual.rules, rule))
            differences.push_back(where + "rule \"" + rule.label + "\" is missing or altered");
    }
    for (std::size_t i = 0; i < actual.rules.size(); ++i) {
        const ListedRule& rule = actual.rules[i];
        const std::size_t wanted = count_of(expected.rules, rule);
        if (wanted == 0) differences.push_back(where + "unexpected rule \"" + rule.label + "\"");
        else if (count_of(actual.rules, rule) > wanted) differences.push_back(where + "extra copy of rule \"" + rule.label + "\"");
    }
    if (differences.size() != before) return;
    for (std::size_t i = 0; i < expected.rules.size(); ++i) {
        if (!(expected.rules[i].match == actual.rules[i].match)) {
            differences.push_back(where + "rules are out of order (at \"" + actual.rules[i].label + "\")");
            return;
        }
    }
}

// Runs in the child: a private network namespace, load the tables one after the other,
// write each listing to `fd` separated by NUL bytes.
[[noreturn]] void render_in_private_namespace(const std::vector<Table>& tables, int fd) {
    int status = 0;
    try {
        if (::unshare(CLONE_NEWNET) != 0) throw_system_error("unshare", errno);
        NftContext nft;
        for (const Table& table : tables) {
            nft.run(render_replace_script(table));
            std::string listing = nft.list_table_json(table_family, table_name).value_or("");
            listing.push_back('\0');
            write_all(fd, listing, "the expected table's listing");
        }
    } catch (const std::exception& error) {
        std::string message = std::string("psi-fw: cannot render the expected table: ") + error.what() + "\n";
        [[maybe_unused]] auto ignored = ::write(STDERR_FILENO, message.data(), message.size());
        status = 1;
    }
    ::_exit(status);
}

}  // namespace

const ListedChain* ListedTable::find_chain(const std::string& name) const {
    for (const ListedChain& chain : chains)
        if (chain.name == name) return &chain;
    return nullptr;
}

ListedTable parse_listing(const std::string& json_text) {
    json::Value document = json::parse(json_text, "nftables listing");
    const json::Value* items = document.find("nftables");
    if (!items || !items->is_array()) throw Error("nftables listing has no \"nftables\" array");
    ListedTable table;
    for (const json::Value& item : items->as_array()) {
        if (const json::Value* chain = item.find("chain")) {
            ListedChain listed;
            listed.name = string_member(*chain, "name");
            listed.type = string_member(*chain, "type");
            listed.hook = string_member(*chain, "hook");
            listed.policy = string_member(*chain, "policy");
            if (const json::Value* priority = chain->find("prio"))
                listed.priority = priority->is_number() ? priority->as_integer() : 0;
            table.chains.push_back(std::move(listed));
        } else if (const json::Value* rule = item.find("rule")) {
            ListedChain* chain = find_chain(table, string_member(*rule, "chain"));
            if (!chain) throw Error("nftables listing has a rule before its chain");
            ListedRule listed;
            listed.label = string_member(*rule, "comment");
            if (listed.label.empty()) {
                const json::Value* handle = rule->find("handle");
                listed.label = "handle " + (handle ? handle->dump() : std::string("?"));
            }
            if (const json::Value* expressions = rule->find("expr")) {
                listed.match = *expressions;
                listed.packets = strip_counters(listed.match.as_array());
            }
            chain->rules.push_back(std::move(listed));
        } else if (const json::Value* listed_table = item.find("table")) {
            // A dormant table hooks nothing: flags of any kind are a difference.
            if (listed_table->find("flags")) table.has_flags = true;
        } else if (!item.find("metainfo") && item.is_object() && !item.as_object().empty()) {
            const auto& [kind, object] = item.as_object().front();
            table.other_objects.push_back(kind + " " + string_member(object, "name"));
        }
    }
    return table;
}

std::vector<std::string> compare_tables(const ListedTable& expected, const ListedTable& actual) {
    std::vector<std::string> differences;
    for (const ListedChain& chain : expected.chains) {
        const ListedChain* found = actual.find_chain(chain.name);
        if (!found) {
            differences.push_back("chain " + chain.name + " is missing");
            continue;
        }
        if (describe_chain(chain) != describe_chain(*found))
            differences.push_back("chain " + chain.name + ": " + describe_chain(*found) +
                                  ", expected " + describe_chain(chain));
        compare_rules(chain, *found, differences);
    }
    for (const ListedChain& chain : actual.chains)
        if (!expected.find_chain(chain.name)) differences.push_back("unexpected chain " + chain.name);
    if (actual.has_flags && !expected.has_flags)
        differences.push_back("the table has flags set (such as dormant): it may not be filtering");
    for (const std::string& object : actual.other_objects)
        if (std::find(expected.other_objects.begin(), expected.other_objects.end(), object) == expected.other_objects.end())
            differences.push_back("unexpected " + object);
    return differences;
}

std::optional<ListedTable> read_kernel_table() {
    NftContext nft;
    std::optional<std::string> listing = nft.list_table_json(table_family, table_name);
    if (!listing) return std::nullopt;
    return parse_listing(*listing);
}

std::vector<ListedTable> render_expected(const std::vector<Table>& tables) {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw_system_error("cannot create a pipe", errno);
    UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    pid_t child = ::fork();
    if (child < 0) throw_system_error("cannot fork", errno);
    if (child == 0) {
        read_end.reset();
        render_in_private_namespace(tables, write_end.get());
    }
    write_end.reset();

    std::string output;
    try {
        output = read_all(read_end.get(), "the expected table's listing");
    } catch (const Error&) {
        // The child is still reaped below; an incomplete listing is refused there.
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw Error("cannot render the expected table (psi-fw needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)");

    std::vector<ListedTable> listed;
    for (std::size_t start = 0; start < output.size();) {
        std::size_t end = output.find('\0', start);
        if (end == std::string::npos) break;
        listed.push_back(parse_listing(output.substr(start, end - start)));
        start = end + 1;
    }
    if (listed.size() != tables.size()) throw Error("cannot render the expected table: incomplete listing");
    return listed;
}

std::uint64_t rejected_packets(const ListedTable& table) {
    const ListedChain* output = table.find_chain("output");
    std::uint64_t packets = 0;
    if (output)
        for (const ListedRule& rule : output->rules) packets += rule.packets;
    return packets;
}

}  // namespace psi::fw
