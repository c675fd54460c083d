#include "servers/server_outcome.hpp"

#include <gtest/gtest.h>

#include "core/atomic_file.hpp"
#include "servers/selection.hpp"
#include "testing/test_support.hpp"

namespace psi::servers {
namespace {

constexpr std::int64_t now = 1'800'000'000;

// Stored servers that speak OSSH and SSH, first seen long before `now`.
Store store_of(std::initializer_list<const char*> addresses) {
    Store store;
    ImportCounts counts;
    for (const std::string address : addresses)
        store.import_one(ServerEntry{json::parse(R"({"ipAddress":")" + address +
                                                 R"(","sshPort":22,"sshObfuscatedPort":443,"sshObfuscatedKey":"k",)"
                                                 R"("capabilities":["OSSH","SSH","ssh-api-requests"]})")},
                         Source::embedded, 1, false, counts);
    return store;
}

ServerOutcome connected(const char* address, std::int64_t time) { return {address, "OSSH", true, FailureClass::none, time}; }

ServerOutcome failed(const char* address, std::int64_t time, FailureClass failure = FailureClass::timeout) {
    return {address, "OSSH", false, failure, time};
}

// The store as bytes, to see that nothing at all changed.
std::string saved(const Store& store) {
    psi::testing::TemporaryDirectory directory;
    store.save(directory.path() + "/servers");
    return read_file(directory.path() + "/servers");
}

TEST(RecordOutcome, AConnectionIsRememberedAndClearsTheFailuresBeforeIt) {
    Store store = store_of({"192.0.2.1"});
    EXPECT_EQ(record_outcome(store, failed("192.0.2.1", now - 300, FailureClass::refused), now), std::nullopt);
    EXPECT_EQ(record_outcome(store, failed("192.0.2.1", now - 200), now), std::nullopt);
    const StoredEntry& entry = *store.find("192.0.2.1");
    EXPECT_EQ(entry.failures, 2u);
    EXPECT_EQ(entry.last_failed, now - 200);
    EXPECT_EQ(entry.last_failure, FailureClass::timeout);
    EXPECT_EQ(entry.last_connected, 0);

    EXPECT_EQ(record_outcome(store, connected("192.0.2.1", now - 100), now), std::nullopt);
    EXPECT_EQ(entry.last_connected, now - 100);
    EXPECT_EQ(entry.failures, 0u);
    EXPECT_EQ(entry.last_failed, now - 200);  // kept: what went wrong last
    EXPECT_EQ(entry.last_failure, FailureClass::timeout);

    // A failure from before that connection does not count against the server.
    EXPECT_EQ(record_outcome(store, failed("192.0.2.1", now - 150), now), std::nullopt);
    EXPECT_EQ(entry.failures, 0u);
    EXPECT_EQ(record_outcome(store, failed("192.0.2.1", now - 50, FailureClass::dropped), now), std::nullopt);
    EXPECT_EQ(entry.failures, 1u);
    EXPECT_EQ(entry.last_failure, FailureClass::dropped);
}

TEST(RecordOutcome, AnOutcomeThatArrivesLateDoesNotUndoANewerOne) {
    const std::vector<ServerOutcome> outcomes = {failed("192.0.2.1", now - 90), connected("192.0.2.1", now - 100),
                                                 failed("192.0.2.1", now - 110, FailureClass::auth),
                                                 connected("192.0.2.1", now - 120)};
    Store forward = store_of({"192.0.2.1"});
    for (auto it = outcomes.begin(); it != outcomes.end(); ++it) ASSERT_EQ(record_outcome(forward, *it, now), std::nullopt);
    Store backward = store_of({"192.0.2.1"});
    for (auto it = outcomes.rbegin(); it != outcomes.rend(); ++it) ASSERT_EQ(record_outcome(backward, *it, now), std::nullopt);
    EXPECT_EQ(saved(forward), saved(backward));
    EXPECT_EQ(forward.find("192.0.2.1")->failures, 1u);
    EXPECT_EQ(forward.find("192.0.2.1")->last_connected, now - 100);
}

TEST(RecordOutcome, AnUnknownAddressChangesNothing) {
    Store store = store_of({"192.0.2.1"});
    const std::string before = saved(store);
    EXPECT_EQ(record_outcome(store, failed("192.0.2.9", now), now), "not in the store");
    EXPECT_EQ(record_outcome(store, connected("", now), now), "not in the store");
    EXPECT_EQ(store.entries().size(), 1u);
    EXPECT_EQ(saved(store), before);
}

TEST(RecordOutcome, ACorruptOutcomeChangesNothing) {
    Store store = store_of({"192.0.2.1"});
    const std::string before = saved(store);
    ServerOutcome unserved = connected("192.0.2.1", now);
    unserved.protocol = "QUIC-OSSH";
    ServerOutcome unknown_class = failed("192.0.2.1", now);
    unknown_class.failure = static_cast<FailureClass>(200);
    const std::vector<std::pair<ServerOutcome, std::string>> cases = {
        {connected("192.0.2.1", now + max_outcome_clock_skew_seconds + 1), "a time in the future"},
        {failed("192.0.2.1", now + 3600), "a time in the future"},
        {connected("192.0.2.1", 0), "no time"},
        {failed("192.0.2.1", -5), "no time"},
        {unserved, "a protocol the server does not serve"},
        {{"192.0.2.1", "OSSH", true, FailureClass::auth, now}, "a connection with a failure class"},
        {{"192.0.2.1", "OSSH", false, FailureClass::none, now}, "a failure without a class"},
        {unknown_class, "an unknown failure class"},
    };
    for (const auto& [outcome, reason] : cases) EXPECT_EQ(record_outcome(store, outcome, now), reason) << reason;
    EXPECT_EQ(saved(store), before);
    // A moment ahead is two clocks, not a lie.
    EXPECT_EQ(record_outcome(store, connected("192.0.2.1", now + max_outcome_clock_skew_seconds), now), std::nullopt);
}

TEST(OutcomeLine, WrittenLinesReadBack) {
    for (const ServerOutcome& outcome : {connected("192.0.2.1", now), failed("2001:db8::7", now, FailureClass::host_key)}) {
        const std::string line = to_json(outcome).dump();
        const auto parsed = outcome_from_json_line(line);
        ASSERT_TRUE(std::holds_alternative<ServerOutcome>(parsed)) << line << ": " << std::get<std::string>(parsed);
        EXPECT_EQ(to_json(std::get<ServerOutcome>(parsed)).dump(), line);
    }
    EXPECT_EQ(to_json(failed("192.0.2.1", 1796656957)).dump(),
              R"({"address":"192.0.2.1","protocol":"OSSH","connected":false,"failure":"timeout","time":1796656957})");
    EXPECT_EQ(to_json(connected("192.0.2.1", 5)).dump(), R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"time":5})");
}

TEST(OutcomeLine, EveryMalformedLineIsNamed) {
    const std::string padding(max_outcome_line_bytes, ' ');
    const std::vector<std::pair<std::string, std::string>> cases = {
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"time":5})" + padding, "longer than 512 bytes"},
        {R"({"address":"192.0.2.1",)", "not JSON"},
        {R"(["192.0.2.1"])", "not a JSON object"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"time":5,"extra":1})", "an unknown field"},
        {R"({"address":"192.0.2.1","address":"192.0.2.2","protocol":"OSSH","connected":true,"time":5})", "not JSON"},
        {R"({"protocol":"OSSH","connected":true,"time":5})", "no address"},
        {R"({"address":7,"protocol":"OSSH","connected":true,"time":5})", "no address"},
        {R"({"address":")" + std::string(46, '1') + R"(","protocol":"OSSH","connected":true,"time":5})", "no address"},
        {R"({"address":"192.0.2.1\u001b[2J","protocol":"OSSH","connected":true,"time":5})", "no address"},
        {R"({"address":"192.0.2.1","protocol":"OSHH","connected":true,"time":5})", "an unknown protocol"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":"yes","time":5})", "no connected true or false"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"failure":"timeout","time":5})",
         "a failure class on a connection"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":false,"time":5})", "an unknown failure class"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":false,"failure":"blocked","time":5})",
         "an unknown failure class"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true})", "no time in Unix seconds"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"time":1.5})", "no time in Unix seconds"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"time":-1})", "no time in Unix seconds"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"time":"5"})", "no time in Unix seconds"},
        {R"({"address":"192.0.2.1","protocol":"OSSH","connected":true,"time":99999999999999999999})",
         "no time in Unix seconds"},
    };
    for (const auto& [line, reason] : cases) {
        const auto parsed = outcome_from_json_line(line);
        ASSERT_TRUE(std::holds_alternative<std::string>(parsed)) << line;
        EXPECT_EQ(std::get<std::string>(parsed), reason) << line;
    }
}

TEST(OutcomeLine, LinesAreCountedByWhatBecameOfThem) {
    Store store = store_of({"192.0.2.1", "192.0.2.2"});
    const std::string text = to_json(connected("192.0.2.1", now - 10)).dump() + "\n\n" +
                             to_json(failed("192.0.2.2", now - 10)).dump() + "\n" +
                             to_json(failed("192.0.2.2", now - 5)).dump() + "\n" +
                             to_json(failed("192.0.2.3", now - 5)).dump() + "\n" + "not json\n" +
                             to_json(connected("192.0.2.1", now + 3600)).dump();
    const OutcomeReport report = record_outcome_lines(store, text, now);
    EXPECT_EQ(report.connected, 1u);
    EXPECT_EQ(report.failed, 2u);
    EXPECT_EQ(report.skipped, (std::map<std::string, std::size_t>{{"not JSON", 1}}));
    EXPECT_EQ(report.refused,
              (std::map<std::string, std::size_t>{{"not in the store", 1}, {"a time in the future", 1}}));
    EXPECT_FALSE(report.is_all_skipped());
    EXPECT_EQ(store.find("192.0.2.2")->failures, 2u);
    EXPECT_TRUE(record_outcome_lines(store, "garbage\n{}\n", now).is_all_skipped());
    EXPECT_FALSE(record_outcome_lines(store, "", now).is_all_skipped());
}

// pick's order, as addresses.
std::vector<std::string> picked(const Store& store, std::int64_t at, std::uint64_t seed) {
    Selection selection;
    selection.seed = seed;
    std::vector<std::string> addresses;
    for (const StoredEntry* entry : select_servers(store, selection, at)) addresses.push_back(entry->ip_address);
    return addresses;
}

Store ten_servers() {
    return store_of({"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6", "192.0.2.7",
                     "192.0.2.8", "192.0.2.9", "192.0.2.10"});
}

void record(Store& store, const ServerOutcome& outcome) { ASSERT_EQ(record_outcome(store, outcome, now), std::nullopt); }

TEST(RankingByMemory, ThoseThatConnectedFirstThenTheUntriedThenThoseThatFailed) {
    Store store = ten_servers();
    record(store, connected("192.0.2.4", now - 3600));
    record(store, connected("192.0.2.7", now - 60));
    record(store, failed("192.0.2.1", now - 600));
    record(store, connected("192.0.2.9", now - 7200));
    record(store, failed("192.0.2.9", now - 10));  // it worked, then it failed
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        const auto order = picked(store, now, seed);
        ASSERT_EQ(order.size(), 10u);
        EXPECT_EQ(order[0], "192.0.2.7") << seed;
        EXPECT_EQ(order[1], "192.0.2.4") << seed;
        EXPECT_EQ(order[8], "192.0.2.1") << seed;  // one failure as .9, but an older one
        EXPECT_EQ(order[9], "192.0.2.9") << seed;
    }
}

TEST(RankingByMemory, MoreFailuresGoLaterAndAConnectionAfterFailuresWins) {
    Store store = ten_servers();
    for (int i = 0; i < 5; ++i) record(store, failed("192.0.2.2", now - 100 + i));
    record(store, failed("192.0.2.3", now - 50));
    for (int i = 0; i < 3; ++i) record(store, failed("192.0.2.5", now - 300 + i));
    record(store, connected("192.0.2.5", now - 30));
    const auto order = picked(store, now, 3);
    EXPECT_EQ(order.front(), "192.0.2.5");
    EXPECT_EQ(order[8], "192.0.2.3");
    EXPECT_EQ(order[9], "192.0.2.2");
}

TEST(RankingByMemory, AFailureWeighsFullyForHoursThenHalvesUntilItIsForgotten) {
    Store store = store_of({"192.0.2.1"});
    StoredEntry& entry = *store.find("192.0.2.1");
    EXPECT_EQ(failure_weight(entry, now), 0);
    record(store, failed("192.0.2.1", now));
    constexpr std::int64_t hour = 3600;
    EXPECT_EQ(failure_weight(entry, now), 1);
    EXPECT_EQ(failure_weight(entry, now + 6 * hour), 1);
    EXPECT_DOUBLE_EQ(failure_weight(entry, now + 18 * hour), 0.5);
    EXPECT_DOUBLE_EQ(failure_weight(entry, now + 30 * hour), forgotten_failure_weight);
    EXPECT_LT(failure_weight(entry, now + 31 * hour), forgotten_failure_weight);
    record(store, connected("192.0.2.1", now + 1));
    EXPECT_EQ(failure_weight(entry, now + 1), 0);
}

TEST(RankingByMemory, BlockedYesterdayIsTriedAgainTomorrowAsIfUntried) {
    Store remembered = ten_servers();
    record(remembered, failed("192.0.2.6", now - 20 * 3600, FailureClass::refused));
    const Store untried = ten_servers();
    const std::int64_t tomorrow = now + 24 * 3600;
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        EXPECT_EQ(picked(remembered, now, seed).back(), "192.0.2.6") << seed;
        EXPECT_EQ(picked(remembered, tomorrow, seed), picked(untried, tomorrow, seed)) << seed;
    }
    // One that had connected before it failed goes back among those that connected.
    record(remembered, connected("192.0.2.8", now - 40 * 3600));
    record(remembered, failed("192.0.2.8", now - 10 * 3600));
    EXPECT_EQ(picked(remembered, now, 5).back(), "192.0.2.8");
    EXPECT_EQ(picked(remembered, tomorrow, 5).front(), "192.0.2.8");
}

}  // namespace
}  // namespace psi::servers
