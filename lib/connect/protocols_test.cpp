#include "connect/protocols.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "connect/transport.hpp"
#include "core/atomic_file.hpp"
#include "servers/selection.hpp"
#include "servers/store.hpp"

namespace psi::connect {
namespace {

using Names = std::vector<std::string>;

// A file of the repository, found from build/unit-tests wherever the tests run from.
std::string repository_file(const std::string& path) {
    const std::filesystem::path top = std::filesystem::canonical("/proc/self/exe").parent_path().parent_path();
    return read_file((top / path).string());
}

// The protocol names in a piece of a man page or a script, in order, each once: words such as
// OSSH and TLS-OSSH (roff's "\-" read as "-"), which every Psiphon protocol name ends with.
Names protocol_names_in(std::string text) {
    for (std::size_t at = text.find("\\-"); at != std::string::npos; at = text.find("\\-", at)) text.erase(at, 1);
    static const std::regex name(R"((^|[^A-Za-z0-9-])((?:[A-Z][A-Z0-9-]*)?SSH)(?![A-Za-z0-9-]))");
    Names names;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator(); ++it)
        if (std::find(names.begin(), names.end(), (*it)[2].str()) == names.end()) names.push_back((*it)[2].str());
    return names;
}

// The lines between a man page's ".\" <what> (checked by ...)" and ".\" end of <what>" comments.
std::vector<std::string> marked_lists(const std::string& page, const std::string& what) {
    std::vector<std::string> lists;
    std::istringstream lines(page);
    std::string line;
    std::optional<std::string> open;
    while (std::getline(lines, line)) {
        if (line.starts_with(".\\\" " + what + " (checked by")) {
            EXPECT_FALSE(open) << "a list of " << what << " inside another";
            open.emplace();
        } else if (line == ".\\\" end of " + what) {
            EXPECT_TRUE(open) << "the end of a list of " << what << " that did not begin";
            if (open) lists.push_back(*open);
            open.reset();
        } else if (open) {
            *open += line + "\n";
        }
    }
    EXPECT_FALSE(open) << "a list of " << what << " that does not end";
    return lists;
}

// What the first group of `pattern` matches in a completion script.
std::string completion_list(const std::string& script, const std::string& pattern) {
    std::smatch match;
    const std::string text = repository_file(script);
    if (!std::regex_search(text, match, std::regex(pattern))) {
        ADD_FAILURE() << script << " has no protocol list like " << pattern;
        return std::string();
    }
    return match[1].str();
}

Names sorted(Names names) {
    std::sort(names.begin(), names.end());
    return names;
}

TEST(Protocols, OsshFirstSshLast) {
    EXPECT_EQ(spoken_protocol_names(), (Names{"OSSH", "TLS-OSSH", "SSH"}));
    EXPECT_EQ(spoken_protocol_list(", "), "OSSH, TLS-OSSH, SSH");
    EXPECT_EQ(spoken_protocol_list(" or "), "OSSH or TLS-OSSH or SSH");
    EXPECT_EQ(servers::default_protocols(), spoken_protocol_names());  // psi-servers pick's default
}

TEST(Protocols, EachIsAPsiphonProtocolWithATransport) {
    for (const SpokenProtocol& protocol : spoken_protocols()) {
        EXPECT_TRUE(servers::is_known_protocol(std::string(protocol.name))) << protocol.name;
        EXPECT_EQ(find_spoken_protocol(protocol.name), &protocol);
        EXPECT_NE(protocol.make_transport(), nullptr) << protocol.name;
    }
    EXPECT_EQ(find_spoken_protocol("QUIC-OSSH"), nullptr);  // Psiphon's, not psi's
    EXPECT_EQ(find_spoken_protocol("ossh"), nullptr);
    EXPECT_EQ(find_spoken_protocol(""), nullptr);
}

TEST(Protocols, TheNameFinderReadsRoffAndScripts) {
    EXPECT_EQ(protocol_names_in(".BR TLS\\-OSSH ,\n.B OSSH\nor SSH, then SSH again (\\-\\-protocols SSH,OSSH)\n"),
              (Names{"TLS-OSSH", "OSSH", "SSH"}));
    EXPECT_EQ(protocol_names_in("sshObfuscatedPort tlsOSSHPort TCP SOCKS5 API"), Names{});
}

TEST(Protocols, TheManPagesListExactlyTheSpokenOnesInOrder) {
    for (const char* page : {"man/psi-connect.8", "man/psi-servers.8", "man/psi.conf.5", "man/psi.8"}) {
        const std::vector<std::string> lists = marked_lists(repository_file(page), "spoken protocols");
        EXPECT_FALSE(lists.empty()) << page;
        for (const std::string& list : lists)
            EXPECT_EQ(protocol_names_in(list), spoken_protocol_names()) << page << ":\n" << list;
    }
}

TEST(Protocols, PsiServersManPageListsEveryPsiphonProtocol) {
    const std::vector<std::string> lists = marked_lists(repository_file("man/psi-servers.8"), "Psiphon's protocols");
    ASSERT_EQ(lists.size(), 1u);
    EXPECT_EQ(protocol_names_in(lists[0]), servers::psiphon_protocols());
}

TEST(Protocols, TheCompletionsOfferExactlyTheSpokenOnesInOrder) {
    EXPECT_EQ(protocol_names_in(completion_list("completions/bash/psi-connect", R"(for protocol in ([^;]*); do)")),
              spoken_protocol_names());
    EXPECT_EQ(protocol_names_in(completion_list("completions/zsh/_psi-connect", R"(_sequence compadd - ([^']*)')")),
              spoken_protocol_names());
}

TEST(Protocols, PsiServersCompletionsOfferEveryPsiphonProtocol) {
    const Names expected = sorted(servers::psiphon_protocols());
    EXPECT_EQ(sorted(protocol_names_in(completion_list("completions/bash/psi-servers", R"re(local protocols="([^"]*)")re"))),
              expected);
    EXPECT_EQ(sorted(protocol_names_in(completion_list("completions/zsh/_psi-servers", R"(:protocol:\(([^)]*)\))"))),
              expected);
}

}  // namespace
}  // namespace psi::connect
