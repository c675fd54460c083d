#include "servers/discovery.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "servers/importer.hpp"

namespace psi::servers {
namespace {

constexpr std::int64_t day = 24 * 3600;

ServerEntry entry(const std::string& address, int version = 1, const std::string& padding = "") {
    return ServerEntry{json::parse(R"({"ipAddress":")" + address + R"(","sshPort":22,"capabilities":["SSH","ssh-api-requests"],)"
                                   R"("configurationVersion":)" + std::to_string(version) + R"(,"padding":")" + padding + R"("})")};
}

std::string lines(const std::vector<std::string>& addresses) {
    std::string text;
    for (const std::string& address : addresses) text += encode_entry_line(entry(address)) + "\n";
    return text;
}

// A global address per number, data only: 11.0.0.0/8 is nobody's lab.
std::string global_address(int number) {
    return "11." + std::to_string(number / 65536) + "." + std::to_string(number / 256 % 256) + "." +
           std::to_string(number % 256);
}

ImportReport import_at(Store& store, const std::string& text, Source source, std::int64_t now) {
    return import_entry_lines(store, text, ImportOptions{source, now, false, ""});
}

const std::vector<std::string> hostile = {"127.0.0.1", "192.168.77.1", "169.254.169.254", "::ffff:127.0.0.1", "fe80::1"};

TEST(Discovery, EntriesWithANonGlobalAddressAreRefusedAndCounted) {
    std::vector<std::string> addresses = hostile;
    addresses.push_back("192.175.48.7");
    Store store;
    const ImportReport report = import_at(store, lines(addresses), Source::discovery, 100);
    EXPECT_EQ(report.counts.added, 1u);
    EXPECT_EQ(report.refused, (std::map<std::string, std::size_t>{{"non-global address", 5}}));
    EXPECT_TRUE(report.skipped.empty());
    EXPECT_FALSE(report.is_all_skipped());  // well-formed entries, refused: not a bad input
    ASSERT_EQ(store.entries().size(), 1u);
    EXPECT_EQ(store.entries()[0].ip_address, "192.175.48.7");
}

TEST(Discovery, EntriesTheUserImportsAndTheRemoteListAreNotFiltered) {
    for (const Source source : {Source::embedded, Source::remote, Source::target}) {
        Store store;
        const ImportReport report = import_at(store, lines(hostile), source, 100);
        EXPECT_EQ(report.counts.added, hostile.size()) << source_name(source);
        EXPECT_TRUE(report.refused.empty()) << source_name(source);
        EXPECT_EQ(report.removed_discovered, 0u) << source_name(source);
    }
}

TEST(Discovery, OneImportTakesAtMostTenEvenWhenItsStreamComesInBlocks) {
    std::string text;
    for (int i = 0; i < 6000; ++i) text += encode_entry_line(entry(global_address(i), 1, std::string(200, 'x'))) + "\n";
    ASSERT_GT(text.size(), 2u << 20);  // more than two of the stream's 1 MiB blocks
    Store store;
    std::istringstream input(text);
    const ImportReport report = import_entry_stream(store, input, ImportOptions{Source::discovery, 100, false, ""});
    EXPECT_EQ(report.counts.added, max_discovered_per_import);
    EXPECT_EQ(report.refused, (std::map<std::string, std::size_t>{{"beyond 10 discovered in one import", 5990}}));
    EXPECT_EQ(store.entries().size(), 10u);
    EXPECT_NE(store.find(global_address(9)), nullptr);
    EXPECT_EQ(store.find(global_address(10)), nullptr);
    // The cap is per import: the next handshake's entries come in.
    EXPECT_EQ(import_at(store, lines({global_address(5000)}), Source::discovery, 200).counts.added, 1u);
    // Non-global ones refused do not use up the ten.
    std::vector<std::string> mixed = hostile;
    for (int i = 100; i < 110; ++i) mixed.push_back(global_address(i));
    EXPECT_EQ(import_at(store, lines(mixed), Source::discovery, 300).counts.added, 10u);
}

TEST(Discovery, BeyondTwoHundredStoredTheOnesSeenLongestAgoGoAndNoOtherSource) {
    Store store;
    import_at(store, lines({"192.168.1.1", "10.0.0.1", global_address(99999)}), Source::embedded, 0);
    for (int i = 0; i < 200; ++i) import_at(store, lines({global_address(i)}), Source::discovery, 1000 + i);
    EXPECT_EQ(store.entries().size(), 203u);
    store.find(global_address(0))->last_connected = 5000;  // connected lately: seen, whatever its last_seen
    const ImportReport report =
        import_at(store, lines({global_address(300), global_address(301), global_address(302)}), Source::discovery, 6000);
    EXPECT_EQ(report.counts.added, 3u);
    EXPECT_EQ(report.removed_discovered, 3u);
    EXPECT_EQ(store.entries().size(), 203u);
    EXPECT_NE(store.find(global_address(0)), nullptr);
    for (int gone : {1, 2, 3}) EXPECT_EQ(store.find(global_address(gone)), nullptr) << gone;
    EXPECT_NE(store.find(global_address(4)), nullptr);
    for (const std::string& address : {std::string("192.168.1.1"), std::string("10.0.0.1"), global_address(99999)})
        EXPECT_NE(store.find(address), nullptr) << address;
}

TEST(Discovery, EntriesNotSeenForThirtyDaysGoAtTheNextImportOfAnySource) {
    Store store;
    import_at(store, lines({global_address(1), global_address(2), global_address(3)}), Source::discovery, 0);
    import_at(store, lines({global_address(10)}), Source::embedded, 0);
    import_at(store, lines({global_address(11)}), Source::remote, 0);
    import_at(store, lines({global_address(2)}), Source::discovery, 20 * day);  // handed out again
    store.find(global_address(3))->last_connected = 25 * day;

    EXPECT_EQ(import_at(store, "", Source::embedded, 30 * day).removed_discovered, 0u);  // 30 days: not yet
    const ImportReport report = import_at(store, "", Source::remote, 30 * day + 1);
    EXPECT_EQ(report.removed_discovered, 1u);
    EXPECT_EQ(store.find(global_address(1)), nullptr);
    for (int kept : {2, 3, 10, 11}) EXPECT_NE(store.find(global_address(kept)), nullptr) << kept;
}

TEST(Discovery, NonGlobalEntriesStoredBeforeTheRulesGoAtTheNextImport) {
    Store store;
    store.import({entry("192.168.77.1"), entry("169.254.169.254"), entry("192.175.48.7")}, Source::discovery, 100, false);
    store.import({entry("192.168.77.2")}, Source::embedded, 100, false);
    EXPECT_EQ(import_at(store, "", Source::embedded, 200).removed_discovered, 2u);
    EXPECT_EQ(store.find("192.168.77.1"), nullptr);
    EXPECT_EQ(store.find("169.254.169.254"), nullptr);
    EXPECT_NE(store.find("192.175.48.7"), nullptr);
    EXPECT_NE(store.find("192.168.77.2"), nullptr);
}

TEST(Discovery, AHandedOutEntryNeverReplacesOneOfAnotherSource) {
    Store store;
    import_at(store, lines({"192.175.48.7"}), Source::remote, 100);
    const std::string stored_json = store.find("192.175.48.7")->json;
    const std::string newer = encode_entry_line(entry("192.175.48.7", 9)) + "\n";
    const ImportReport report = import_at(store, newer, Source::discovery, 200);
    EXPECT_EQ(report.counts.unchanged, 1u);
    const StoredEntry* stored = store.find("192.175.48.7");
    EXPECT_EQ(stored->source, Source::remote);
    EXPECT_EQ(stored->json, stored_json);
    EXPECT_EQ(stored->last_seen, 200);
    // A discovered one is replaced by a newer discovered one, as before.
    import_at(store, lines({global_address(1)}), Source::discovery, 100);
    const std::string newer_discovered = encode_entry_line(entry(global_address(1), 9)) + "\n";
    EXPECT_EQ(import_at(store, newer_discovered, Source::discovery, 200).counts.updated, 1u);
    EXPECT_EQ(store.find(global_address(1))->configuration_version, 9);
}

}  // namespace
}  // namespace psi::servers
