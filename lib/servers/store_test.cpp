#include "servers/store.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <gtest/gtest.h>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "testing/test_support.hpp"
#include "servers/selection.hpp"

namespace psi::servers {
namespace {

ServerEntry entry(const std::string& address, const std::string& region, int version,
                  const std::string& capabilities = R"(["OSSH","SSH","ssh-api-requests"])") {
    return ServerEntry{json::parse(R"({"ipAddress":")" + address + R"(","sshPort":22,"sshObfuscatedPort":443,)"
                                   R"("sshObfuscatedKey":"k","region":")" + region + R"(","capabilities":)" +
                                   capabilities + R"(,"configurationVersion":)" + std::to_string(version) +
                                   R"(,"futureField":{"x":[1,2]}})")};
}

class StoreFile : public ::testing::Test {
protected:
    psi::testing::TemporaryDirectory temporary_;
    const std::string directory_ = temporary_.path();
    const std::string path_ = directory_ + "/servers";
};

TEST_F(StoreFile, MissingFileIsAnEmptyStore) { EXPECT_TRUE(Store::load(path_).entries().empty()); }

TEST_F(StoreFile, ImportCountsAndVersionRules) {
    Store store;
    ImportCounts first = store.import({entry("192.0.2.1", "CA", 1), entry("192.0.2.2", "US", 1)}, Source::embedded, 100, false);
    EXPECT_EQ(first.added, 2u);
    ImportCounts second =
        store.import({entry("192.0.2.1", "DE", 2), entry("192.0.2.2", "DE", 1)}, Source::remote, 200, false);
    EXPECT_EQ(second.updated, 1u);
    EXPECT_EQ(second.unchanged, 1u);
    EXPECT_EQ(store.find("192.0.2.1")->region, "DE");
    EXPECT_EQ(store.find("192.0.2.1")->source, Source::remote);
    EXPECT_EQ(store.find("192.0.2.1")->first_seen, 100);
    EXPECT_EQ(store.find("192.0.2.2")->region, "US");
    EXPECT_EQ(store.find("192.0.2.2")->last_seen, 200);
    ImportCounts forced = store.import({entry("192.0.2.2", "FR", 1)}, Source::target, 300, true);
    EXPECT_EQ(forced.updated, 1u);
    EXPECT_EQ(store.find("192.0.2.2")->region, "FR");
}

TEST_F(StoreFile, SaveAndLoadKeepEverythingIncludingUnknownFields) {
    Store store;
    store.import({entry("192.0.2.1", "CA", 3), entry("2001:db8::7", "", 1)}, Source::discovery, 100, false);
    store.remote.etag = "\"abc\"";
    store.remote.last_success = 42;
    store.save(path_);
    Store loaded = Store::load(path_);
    ASSERT_EQ(loaded.entries().size(), 2u);
    const StoredEntry* stored = loaded.find("192.0.2.1");
    ASSERT_NE(stored, nullptr);
    EXPECT_EQ(stored->json, entry("192.0.2.1", "CA", 3).fields.dump());
    EXPECT_EQ(stored->configuration_version, 3);
    EXPECT_EQ(stored->source, Source::discovery);
    EXPECT_EQ(stored->protocols, (std::vector<std::string>{"SSH", "OSSH"}));
    EXPECT_TRUE(stored->has_api_requests);
    EXPECT_EQ(loaded.remote.etag, "\"abc\"");
    EXPECT_EQ(loaded.remote.last_success, 42);
    EXPECT_EQ(stored->entry().fields.find("futureField")->dump(), R"({"x":[1,2]})");
}

TEST_F(StoreFile, WhatTunnelsDidIsSavedAndLoaded) {
    Store store;
    store.import({entry("192.0.2.1", "CA", 1)}, Source::embedded, 100, false);
    StoredEntry& stored = *store.find("192.0.2.1");
    stored.last_connected = 300;
    stored.failures = 2;
    stored.last_failed = 400;
    stored.last_failure = FailureClass::host_key;
    store.save(path_);
    const StoredEntry& loaded = *Store::load(path_).find("192.0.2.1");
    EXPECT_EQ(loaded.last_connected, 300);
    EXPECT_EQ(loaded.failures, 2u);
    EXPECT_EQ(loaded.last_failed, 400);
    EXPECT_EQ(loaded.last_failure, FailureClass::host_key);
    EXPECT_STREQ(failure_class_name(loaded.last_failure), "host-key");
    EXPECT_EQ(parse_failure_class("host-key"), FailureClass::host_key);
    EXPECT_EQ(parse_failure_class(""), std::nullopt);
}

// A store of format 1, as psi wrote it before it remembered failures, is read as having none.
TEST_F(StoreFile, AStoreOfFormatOneIsStillRead) {
    const StoredEntry old = make_stored_entry(entry("192.0.2.1", "CA", 1), Source::remote, 100);
    {
        std::ofstream output(path_, std::ios::binary);
        cereal::PortableBinaryOutputArchive archive(output);
        archive(std::uint32_t{0x50534953}, std::uint32_t{1}, std::string("\"etag\""), std::int64_t{42}, std::uint64_t{1});
        archive(old.json, old.ip_address, old.region, old.protocols, old.has_api_requests, old.configuration_version,
                old.source, old.first_seen, old.last_seen, std::int64_t{77}, std::uint32_t{3});
    }
    Store store = Store::load(path_);
    const StoredEntry& loaded = *store.find("192.0.2.1");
    EXPECT_EQ(loaded.json, old.json);
    EXPECT_EQ(loaded.last_connected, 77);
    EXPECT_EQ(loaded.failures, 3u);
    EXPECT_EQ(loaded.last_failed, 0);
    EXPECT_EQ(loaded.last_failure, FailureClass::none);
    EXPECT_EQ(store.remote.etag, "\"etag\"");
    store.save(path_);  // written again in the current format
    EXPECT_EQ(Store::load(path_).find("192.0.2.1")->failures, 3u);
}

TEST_F(StoreFile, ACorruptStoreIsReportedAndLeftAsItIs) {
    Store store;
    store.import({entry("192.0.2.1", "CA", 1)}, Source::embedded, 1, false);
    store.save(path_);
    std::string bytes = read_file(path_);
    for (std::size_t cut : {std::size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
        write_file_atomically(path_, bytes.substr(0, cut), 0600);
        EXPECT_THROW(Store::load(path_), Error) << cut;
        EXPECT_EQ(read_file(path_), bytes.substr(0, cut));
    }
    std::string unknown_class = bytes;
    unknown_class.back() = 99;  // the last entry's failure class
    write_file_atomically(path_, unknown_class, 0600);
    EXPECT_THROW(Store::load(path_), Error);
    write_file_atomically(path_, "garbage that is not a store at all", 0600);
    try {
        Store::load(path_);
        FAIL();
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("left untouched"), std::string::npos);
    }
}

TEST_F(StoreFile, RemoveDropsOneEntry) {
    Store store;
    store.import({entry("192.0.2.1", "CA", 1), entry("192.0.2.2", "CA", 1)}, Source::embedded, 1, false);
    EXPECT_TRUE(store.remove("192.0.2.1"));
    EXPECT_FALSE(store.remove("192.0.2.1"));
    EXPECT_EQ(store.find("192.0.2.1"), nullptr);
    EXPECT_NE(store.find("192.0.2.2"), nullptr);
}

TEST(Selection, FiltersByRegionProtocolAndApiCapability) {
    Store store;
    store.import({entry("192.0.2.1", "CA", 1), entry("192.0.2.2", "US", 1),
                  entry("192.0.2.3", "CA", 1, R"(["OSSH","SSH"])"), entry("192.0.2.4", "CA", 1, R"(["SSH","ssh-api-requests"])")},
                 Source::embedded, 1, false);
    Selection selection;
    selection.region = "CA";
    EXPECT_EQ(select_servers(store, selection, 2000).size(), 2u);
    selection.protocols = {"OSSH"};
    auto picked = select_servers(store, selection, 2000);
    ASSERT_EQ(picked.size(), 1u);
    EXPECT_EQ(picked[0]->ip_address, "192.0.2.1");
    selection.protocols = {"QUIC-OSSH"};
    EXPECT_TRUE(select_servers(store, selection, 2000).empty());
}

TEST(Selection, AffinityFirstThenAShuffleThatASeedFixes) {
    Store store;
    std::vector<ServerEntry> entries;
    for (int i = 1; i <= 50; ++i) entries.push_back(entry("192.0.2." + std::to_string(i), "CA", 1));
    store.import(entries, Source::embedded, 1, false);
    Selection selection;
    selection.seed = 7;
    auto first = select_servers(store, selection, 2000);
    auto again = select_servers(store, selection, 2000);
    EXPECT_EQ(first, again);
    selection.seed = 8;
    EXPECT_NE(select_servers(store, selection, 2000), first);
    // With nothing remembered, the order is the shuffle alone.
    auto shuffled = matching_servers(store, selection);
    std::mt19937_64 random(8);
    std::shuffle(shuffled.begin(), shuffled.end(), random);
    EXPECT_EQ(select_servers(store, selection, 2000), shuffled);

    store.find("192.0.2.33")->last_connected = 1000;
    store.find("192.0.2.12")->last_connected = 500;
    selection.count = 5;
    auto picked = select_servers(store, selection, 2000);
    ASSERT_EQ(picked.size(), 5u);
    EXPECT_EQ(picked[0]->ip_address, "192.0.2.33");
    EXPECT_EQ(picked[1]->ip_address, "192.0.2.12");
}

}  // namespace
}  // namespace psi::servers
