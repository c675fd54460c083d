// The table as the kernel holds it, read back through libnftables JSON, and its comparison
// with the expected table. The expected table is rendered by the same libnftables in a
// private network namespace, so both sides are written in the same words.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "fw/ruleset.hpp"

namespace psi::fw {

struct ListedRule {
    std::string label;      // the rule's comment, or "handle N" when it has none
    json::Value match;      // the expressions, with handles and counter values removed
    std::uint64_t packets = 0;  // sum of its counters
};

struct ListedChain {
    std::string name;
    std::string type, hook, policy;
    std::int64_t priority = 0;
    std::vector<ListedRule> rules;
};

struct ListedTable {
    std::vector<ListedChain> chains;
    std::vector<std::string> other_objects;  // sets, maps, ... ("set blocked"): psi-fw makes none
    bool has_flags = false;                  // table flags such as dormant: psi-fw sets none
    const ListedChain* find_chain(const std::string& name) const;
};

// Parses `nft -j list table` output; throws psi::Error on a document of another shape.
ListedTable parse_listing(const std::string& json_text);

// Each difference in one line, naming the chain and the rule; empty when identical.
std::vector<std::string> compare_tables(const ListedTable& expected, const ListedTable& actual);

// The kernel's table, or nullopt when there is none.
std::optional<ListedTable> read_kernel_table();

// How the kernel renders these tables: each is loaded in a new network namespace of a child
// process and listed there. Needs CAP_SYS_ADMIN (psi-fw runs as root).
std::vector<ListedTable> render_expected(const std::vector<Table>& tables);

// Packets counted by the reject rules of the output chain.
std::uint64_t rejected_packets(const ListedTable& table);

}  // namespace psi::fw
