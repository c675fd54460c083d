#include "connect/protocols.hpp"

#include "connect/transport.hpp"

namespace psi::connect {
namespace {

constexpr SpokenProtocol table[] = {
    {"OSSH", make_ossh_transport},
    {"TLS-OSSH", make_tls_ossh_transport},
    {"SSH", make_ssh_transport},
};

}  // namespace

std::span<const SpokenProtocol> spoken_protocols() { return table; }

const SpokenProtocol* find_spoken_protocol(std::string_view name) {
    for (const SpokenProtocol& protocol : table)
        if (protocol.name == name) return &protocol;
    return nullptr;
}

std::vector<std::string> spoken_protocol_names() {
    std::vector<std::string> names;
    for (const SpokenProtocol& protocol : table) names.emplace_back(protocol.name);
    return names;
}

std::string spoken_protocol_list(std::string_view separator) {
    std::string list;
    for (const SpokenProtocol& protocol : table) {
        if (!list.empty()) list += separator;
        list += protocol.name;
    }
    return list;
}

}  // namespace psi::connect
