#include "core/output.hpp"

#include <cstdio>

namespace psi {

void print_json(const json::Value& document) {
    std::string text = document.dump_pretty();
    text += '\n';
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

}  // namespace psi
