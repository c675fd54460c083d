// A name resolved for one fetch alone, at the uplink's own resolvers: the bootstrap fetch of a
// first run, when the system's resolver already points into a tunnel that does not exist yet.
// Queries go over UDP straight to each resolver (as the tunnel user, whom the kill switch lets
// out), never through the system's resolver, so nothing else is opened to anyone. A forged
// answer gains nothing: the list is fetched over HTTPS and its signature verified.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace psi::servers {

inline constexpr std::uint16_t dns_type_a = 1;
inline constexpr std::uint16_t dns_type_aaaa = 28;

// A DNS query (RD set) for `name` of `type` with `id`. Throws psi::Error for a name DNS cannot
// carry (a label over 63 bytes, the whole over 253, an empty label).
std::string build_dns_query(std::uint16_t id, const std::string& name, std::uint16_t type);

enum class DnsAnswer { addresses, no_such_name, failed, not_ours };

struct DnsReply {
    DnsAnswer answer = DnsAnswer::not_ours;
    std::vector<std::string> addresses;  // printable, of `type`
};

// The addresses in `reply` to the query (id, name, type); not_ours for anything that is not its
// answer (another id, another question, not a response), failed for an error code or a
// malformed answer section.
DnsReply parse_dns_reply(std::string_view reply, std::uint16_t id, const std::string& name, std::uint16_t type);

// Throws a usage psi::Error naming the first of `resolvers` that is not an IP address.
void check_resolvers(const std::vector<std::string>& resolvers);

// The IPv4 and IPv6 addresses of `host`, asked of each resolver in turn (A and AAAA at once,
// `attempts` times each, `timeout` per attempt). Throws psi::Error naming the host when none
// answers with an address.
std::vector<std::string> resolve_at(const std::string& host, const std::vector<std::string>& resolvers,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(2), int attempts = 2);

}  // namespace psi::servers
