#include "tun/engine_context.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"
#include "tun/packet_builder.hpp"

namespace psi::tun {

void ProxyHealth::failed(const std::string& why) {
    if (is_down_) return;
    is_down_ = true;
    log::warning(why + "; new connections fail until it is back");
}

void ProxyHealth::reached() {
    if (!is_down_) return;
    is_down_ = false;
    log::info("the SOCKS proxy answers again");
}

bool IcmpBudget::allows(std::span<const std::uint8_t> packet, const PacketView& view) {
    using namespace std::chrono_literals;
    if (!may_answer_with_icmp_error(packet, view)) return false;
    const Clock::time_point now = Clock::now();
    if (now - window_ >= 1s) {
        window_ = now;
        sent_in_window_ = 0;
    }
    return ++sent_in_window_ <= 100;
}

IpAddress parse_ip_address(const std::string& text, const std::string& what) {
    IpAddress address;
    if (inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) {
        address.version = IpVersion::v4;
    } else if (inet_pton(AF_INET6, text.c_str(), address.bytes.data()) == 1) {
        address.version = IpVersion::v6;
    } else {
        throw Error(what + " '" + text + "' is not an IPv4 or IPv6 address", exit_status::usage);
    }
    return address;
}

bool is_in_network(const IpAddress& address, const IpAddress& network, int prefix_length) {
    if (address.version != network.version) return false;
    for (int bit = 0; bit < prefix_length; bit += 8) {
        const int bits = std::min(8, prefix_length - bit);
        const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
        const std::size_t index = static_cast<std::size_t>(bit / 8);
        if ((address.bytes[index] & mask) != (network.bytes[index] & mask)) return false;
    }
    return true;
}

bool is_forwardable(const IpAddress& address) {
    const auto& b = address.bytes;
    if (address.version == IpVersion::v4)
        return b[0] != 0 && b[0] != 127 && b[0] < 224 && !(b[0] == 169 && b[1] == 254);  // link-local
    if (b[0] == 0xff) return false;                           // multicast
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return false;  // link-local
    // ::, ::1, and IPv4-mapped or -compatible addresses (::ffff:127.0.0.1 is loopback too).
    bool is_zero_prefix = true;
    for (std::size_t i = 0; i < 10; ++i) is_zero_prefix = is_zero_prefix && b[i] == 0;
    return !is_zero_prefix;
}

std::optional<Endpoint> proxy_destination(const EngineSettings& settings, const Endpoint& destination) {
    const bool is_v4 = destination.address.version == IpVersion::v4;
    if (destination.address == (is_v4 ? settings.dns_ipv4 : settings.dns_ipv6)) {
        if (destination.port != 53) return std::nullopt;
        return Endpoint{settings.dns_resolver, 53};
    }
    const bool is_inside_tun = is_v4 ? is_in_network(destination.address, settings.tun_address_ipv4, settings.tun_prefix_ipv4)
                                     : is_in_network(destination.address, settings.tun_address_ipv6, settings.tun_prefix_ipv6);
    if (is_inside_tun || !is_forwardable(destination.address) || destination.port == 0) return std::nullopt;
    return destination;
}

proxy::SocksAddress socks_address_of(const Endpoint& endpoint) {
    return {endpoint.address.version == IpVersion::v4 ? proxy::AddressType::ipv4 : proxy::AddressType::ipv6,
            endpoint.address.text(), endpoint.port};
}

std::optional<Endpoint> endpoint_of(const proxy::SocksAddress& address) {
    if (address.type == proxy::AddressType::domain) return std::nullopt;
    Endpoint endpoint;
    const int family = address.type == proxy::AddressType::ipv4 ? AF_INET : AF_INET6;
    if (inet_pton(family, address.host.c_str(), endpoint.address.bytes.data()) != 1) return std::nullopt;
    endpoint.address.version = address.type == proxy::AddressType::ipv4 ? IpVersion::v4 : IpVersion::v6;
    endpoint.port = address.port;
    return endpoint;
}

sockaddr_storage socket_address_of(const Endpoint& endpoint, socklen_t& length) {
    sockaddr_storage storage{};
    if (endpoint.address.version == IpVersion::v4) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(endpoint.port);
        std::memcpy(&v4->sin_addr, endpoint.address.bytes.data(), 4);
        length = sizeof(sockaddr_in);
    } else {
        auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(endpoint.port);
        std::memcpy(&v6->sin6_addr, endpoint.address.bytes.data(), 16);
        length = sizeof(sockaddr_in6);
    }
    return storage;
}

}  // namespace psi::tun

namespace psi::tun {

std::optional<Endpoint> endpoint_of_socket(const sockaddr_storage& address) {
    Endpoint endpoint;
    if (address.ss_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
        endpoint.address.version = IpVersion::v4;
        std::memcpy(endpoint.address.bytes.data(), &v4->sin_addr, 4);
        endpoint.port = ntohs(v4->sin_port);
    } else if (address.ss_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
        endpoint.address.version = IpVersion::v6;
        std::memcpy(endpoint.address.bytes.data(), &v6->sin6_addr, 16);
        endpoint.port = ntohs(v6->sin6_port);
    } else {
        return std::nullopt;
    }
    return endpoint;
}

}  // namespace psi::tun
