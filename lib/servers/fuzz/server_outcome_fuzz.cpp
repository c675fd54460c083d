// libFuzzer target for the outcome lines psi-servers record reads (servers/server_outcome.hpp),
// which an unprivileged process writes. Each line is read and recorded into a store of one
// server: nothing may crash, no entry may appear, and every outcome accepted must come back
// unchanged from to_json + outcome_from_json_line.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "core/json.hpp"
#include "servers/server_outcome.hpp"

namespace {

constexpr std::int64_t now = 1'800'000'000;

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "server_outcome_fuzz: %s: %s\n", what, detail.c_str());
    std::abort();
}

psi::servers::Store one_server_store() {
    psi::servers::Store store;
    psi::servers::ImportCounts counts;
    store.import_one(psi::servers::ServerEntry{psi::json::parse(
                         R"({"ipAddress":"192.0.2.1","sshPort":22,"sshObfuscatedPort":443,"sshObfuscatedKey":"k",)"
                         R"("capabilities":["OSSH","SSH","ssh-api-requests"]})")},
                     psi::servers::Source::embedded, 1, false, counts);
    return store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    psi::servers::Store store = one_server_store();
    psi::servers::record_outcome_lines(store, input, now);
    if (store.entries().size() != 1) fail("an outcome changed the entries", std::string(input));

    std::string_view rest = input;
    while (!rest.empty()) {
        const std::size_t end = std::min(rest.find('\n'), rest.size());
        const auto parsed = psi::servers::outcome_from_json_line(rest.substr(0, end));
        rest.remove_prefix(std::min(end + 1, rest.size()));
        const auto* outcome = std::get_if<psi::servers::ServerOutcome>(&parsed);
        if (!outcome) continue;
        const std::string line = psi::servers::to_json(*outcome).dump();
        const auto again = psi::servers::outcome_from_json_line(line);
        const auto* reread = std::get_if<psi::servers::ServerOutcome>(&again);
        if (!reread) fail("a written outcome does not read back", line);
        if (psi::servers::to_json(*reread).dump() != line) fail("an outcome changed in a round trip", line);
    }
    return 0;
}
