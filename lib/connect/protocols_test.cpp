#include "connect/protocols.hpp"

#include <gtest/gtest.h>

#include "connect/transport.hpp"
#include "servers/selection.hpp"
#include "servers/store.hpp"

namespace psi::connect {
namespace {

using Names = std::vector<std::string>;

TEST(Protocols, OsshFirstThenSsh) {
    EXPECT_EQ(spoken_protocol_names(), (Names{"OSSH", "SSH"}));
    EXPECT_EQ(spoken_protocol_list(", "), "OSSH, SSH");
    EXPECT_EQ(spoken_protocol_list(" or "), "OSSH or SSH");
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

}  // namespace
}  // namespace psi::connect
