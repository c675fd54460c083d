// The kill switch as data: one table built from a Policy in one place, rendered to the
// nft script that replaces the table in a single transaction (docs/kill-switch.md §8).
#pragma once

#include <string>
#include <vector>

#include "fw/policy.hpp"

namespace psi::fw {

struct Rule {
    std::string name;       // stored as the rule's comment; status names rules by it
    std::string statement;  // nft syntax, without the comment
};

struct Chain {
    std::string name;
    std::string hook;
    std::string priority;  // "filter", "raw"
    std::string policy;    // "drop", "accept"
    std::vector<Rule> rules;
};

struct Table {
    std::vector<Chain> chains;
    const Chain* find_chain(const std::string& name) const;
};

Table build_table(const Policy& policy);

// The table alone, as `nft list` would show it.
std::string render_table(const Table& table);

// One transaction: create the table if missing, delete it, create it whole. Loading it never
// leaves an instant without rules, and never fails just because the table was absent.
std::string render_replace_script(const Table& table);

// One transaction that removes the table, whether or not it exists.
std::string render_delete_script();

}  // namespace psi::fw
