// The tunnel protocols psi speaks, in its order of preference (OSSH first: plain SSH is the
// easier to recognise on the wire), each with the transport that carries it. Whatever lists
// them reads this table: the dial, psi-connect's --protocols and LimitTunnelProtocols, psi-servers
// pick's default; protocols_test.cpp checks the man pages and the shell completions against it.
// A protocol's port and capability come from the entry by Psiphon's rules (ServerEntry), and
// Psiphon's other protocol names from servers/store.hpp (psiphon_protocols).
//
// Adding a protocol: its transport's file (transport.hpp), one line in protocols.cpp, and the
// lists protocols_test.cpp names.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace psi::connect {

class Transport;

struct SpokenProtocol {
    std::string_view name;  // as Psiphon spells it (LimitTunnelProtocols, relay_protocol)
    std::unique_ptr<Transport> (*make_transport)();
};

std::span<const SpokenProtocol> spoken_protocols();
const SpokenProtocol* find_spoken_protocol(std::string_view name);  // nullptr: not one psi speaks
std::vector<std::string> spoken_protocol_names();
std::string spoken_protocol_list(std::string_view separator);  // "OSSH, SSH" for ", "

}  // namespace psi::connect
