#include "servers/importer.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace psi::servers {
namespace {

// About 3 MiB of entry lines with bad ones among them, so that blocks end mid-line.
std::string many_lines() {
    std::string text;
    for (int i = 0; i < 6000; ++i) {
        const std::string address = "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250);
        ServerEntry entry{json::parse(R"({"ipAddress":")" + address + R"(","sshPort":22,"capabilities":["SSH"],)"
                                      R"("padding":")" + std::string(200, 'x') + R"("})")};
        text += encode_entry_line(entry) + "\n";
        if (i % 1000 == 0) text += "not hex\n";
    }
    return text;
}

TEST(Importer, AStreamGivesWhatTheWholeTextGives) {
    const std::string text = many_lines();
    ASSERT_GT(text.size(), 2u << 20);
    Store whole, streamed;
    const ImportReport expected = import_entry_lines(whole, text, ImportOptions{Source::embedded, 1, false, ""});
    std::istringstream input(text);
    const ImportReport report = import_entry_stream(streamed, input, ImportOptions{Source::embedded, 1, false, ""});
    EXPECT_EQ(report.counts.added, 6000u);
    EXPECT_EQ(report.counts.added, expected.counts.added);
    EXPECT_EQ(report.skipped, expected.skipped);
    EXPECT_EQ(report.skipped_count(), 6u);
    EXPECT_EQ(streamed.entries().size(), whole.entries().size());
}

TEST(Importer, ALastLineWithoutNewlineIsRead) {
    Store store;
    ServerEntry entry{json::parse(R"({"ipAddress":"192.0.2.9"})")};
    std::istringstream input(encode_entry_line(entry));
    EXPECT_EQ(import_entry_stream(store, input, ImportOptions{}).counts.added, 1u);
}

}  // namespace
}  // namespace psi::servers
