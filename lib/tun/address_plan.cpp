#include "tun/address_plan.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstdlib>

#include "core/error.hpp"

namespace psi::tun {
namespace {

TunAddresses family_addresses(const std::string& address_with_prefix, const std::string& dns) {
    TunAddresses addresses;
    addresses.network = network_of(address_with_prefix);  // first: it throws on a malformed prefix
    addresses.interface_address = address_with_prefix;
    addresses.address = address_of(address_with_prefix);
    addresses.prefix_length = std::stoi(addresses.network.substr(addresses.network.find('/') + 1));
    addresses.nat_source = address_in_network(address_with_prefix, nat_source_offset);
    addresses.dns = dns;
    return addresses;
}

}  // namespace

AddressPlan address_plan(const Config& config) {
    return {family_addresses(config.tun_address_ipv4, config.tun_dns_ipv4),
            family_addresses(config.tun_address_ipv6, config.tun_dns_ipv6)};
}

std::string network_of(const std::string& address_with_prefix) {
    auto slash = address_with_prefix.find('/');
    if (slash == std::string::npos) throw Error("not an address with a prefix: " + address_with_prefix);
    std::string address = address_with_prefix.substr(0, slash);
    int length = std::atoi(address_with_prefix.c_str() + slash + 1);
    int family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
    std::array<unsigned char, 16> bytes{};
    int byte_count = family == AF_INET ? 4 : 16;
    if (inet_pton(family, address.c_str(), bytes.data()) != 1 || length < 0 || length > byte_count * 8)
        throw Error("not an address with a prefix: " + address_with_prefix);
    for (int bit = length; bit < byte_count * 8; ++bit)
        bytes[static_cast<std::size_t>(bit / 8)] &= static_cast<unsigned char>(~(0x80u >> (bit % 8)));
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, bytes.data(), text, sizeof text);
    return std::string(text) + "/" + std::to_string(length);
}

std::string address_of(const std::string& address_with_prefix) {
    return address_with_prefix.substr(0, address_with_prefix.find('/'));
}

std::string address_in_network(const std::string& address_with_prefix, unsigned offset) {
    const std::string network = network_of(address_with_prefix);
    const std::string address = network.substr(0, network.find('/'));
    const int family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
    std::array<unsigned char, 16> bytes{};
    inet_pton(family, address.c_str(), bytes.data());
    const std::size_t last = family == AF_INET ? 3 : 15;
    unsigned carry = offset;
    for (std::size_t i = last + 1; i-- > 0 && carry;) {
        carry += bytes[i];
        bytes[i] = static_cast<unsigned char>(carry & 0xff);
        carry >>= 8;
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, bytes.data(), text, sizeof text);
    return text;
}

}  // namespace psi::tun
