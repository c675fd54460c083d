#include "engine/engine_context.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"
#include "packet/ip_address.hpp"
#include "packet/packet_builder.hpp"

namespace psi::engine {

using packet::Endpoint;
using packet::IpVersion;
using packet::PacketView;
using packet::is_forwardable;
using packet::is_in_network;
using packet::may_answer_with_icmp_error;

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

}  // namespace psi::engine

namespace psi::engine {

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

}  // namespace psi::engine
