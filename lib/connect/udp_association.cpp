#include "connect/udp_association.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"

namespace psi::connect {
namespace {

constexpr std::size_t max_flows_per_association = 256;
constexpr std::uint16_t dns_port = 53;

bool is_loopback(const sockaddr_storage& address) {
    if (address.ss_family == AF_INET)
        return (ntohl(reinterpret_cast<const sockaddr_in&>(address).sin_addr.s_addr) >> 24) == 127;
    if (address.ss_family == AF_INET6) {
        const in6_addr& ip = reinterpret_cast<const sockaddr_in6&>(address).sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(&ip);
    }
    return false;
}

}  // namespace

UdpAssociation::UdpAssociation(EventLoop& loop, UdpgwMux& udpgw, UniqueFd control, FinishedHandler finished)
    : loop_(loop), udpgw_(udpgw), control_(std::move(control)), finished_(std::move(finished)) {
    socket_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!socket_.is_open()) throw_system_error("socket", errno);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(socket_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::getsockname(socket_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
        throw_system_error("cannot bind a UDP socket on 127.0.0.1", errno);
    port_ = ntohs(address.sin_port);
    loop_.add(control_.get(), EPOLLIN, [this](std::uint32_t events) { on_control(events); });
    loop_.add(socket_.get(), EPOLLIN, [this](std::uint32_t) { on_datagram(); });
}

UdpAssociation::~UdpAssociation() {
    if (loop_.contains(control_.get())) loop_.remove(control_.get());
    if (loop_.contains(socket_.get())) loop_.remove(socket_.get());
    for (const auto& [destination, connection_id] : flows_) udpgw_.close_flow(connection_id);
}

void UdpAssociation::on_control(std::uint32_t events) {
    char ignored[512];
    const ssize_t n = ::recv(control_.get(), ignored, sizeof ignored, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (events & EPOLLERR)) finish();
}

void UdpAssociation::on_datagram() {
    for (int round = 0; round < 64 && !is_finished_; ++round) {
        char buffer[65536];
        sockaddr_storage from{};
        socklen_t from_length = sizeof from;
        const ssize_t n = ::recvfrom(socket_.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from),
                                     &from_length);
        if (n < 0) return;
        if (!is_loopback(from)) continue;
        if (client_length_ == 0) {
            client_ = from;
            client_length_ = from_length;
        } else if (from_length != client_length_ || std::memcmp(&from, &client_, from_length) != 0) {
            continue;  // the association belongs to its first sender
        }
        const std::optional<proxy::UdpDatagram> datagram =
            proxy::parse_udp_datagram(std::string_view(buffer, static_cast<std::size_t>(n)));
        if (!datagram || datagram->payload.size() > proxy::udpgw_max_payload) continue;
        const proxy::SocksAddress& destination = datagram->destination;
        const bool is_dns = destination.port == dns_port;
        proxy::UdpgwMessage message;
        message.port = destination.port;
        message.payload = datagram->payload;
        if (destination.type == proxy::AddressType::ipv4 || destination.type == proxy::AddressType::ipv6) {
            message.is_ipv6 = destination.type == proxy::AddressType::ipv6;
            message.address.resize(message.is_ipv6 ? 16 : 4);
            ::inet_pton(message.is_ipv6 ? AF_INET6 : AF_INET, destination.host.c_str(), message.address.data());
        } else if (is_dns) {
            message.address.assign(4, '\0');  // the server ignores it for DNS
        } else {
            continue;
        }
        if (is_dns) message.flags |= proxy::udpgw_flags::dns;
        const auto key = std::make_pair(destination.host, destination.port);
        auto flow = flows_.find(key);
        if (flow == flows_.end()) {
            if (flows_.size() >= max_flows_per_association) continue;
            const std::optional<std::uint16_t> id = udpgw_.open_flow(
                message.is_ipv6, [this, destination](const proxy::UdpgwMessage& reply) { on_reply(destination, reply); });
            if (!id) continue;
            flow = flows_.emplace(key, *id).first;
        }
        message.connection_id = flow->second;
        udpgw_.send(message);
    }
}

void UdpAssociation::on_reply(const proxy::SocksAddress& source, const proxy::UdpgwMessage& message) {
    if (client_length_ == 0) return;
    const std::string datagram = proxy::encode_udp_datagram(proxy::UdpDatagram{source, message.payload});
    (void)!::sendto(socket_.get(), datagram.data(), datagram.size(), MSG_DONTWAIT,
                    reinterpret_cast<const sockaddr*>(&client_), client_length_);
}

void UdpAssociation::finish() {
    if (is_finished_) return;
    is_finished_ = true;
    loop_.remove(control_.get());
    loop_.remove(socket_.get());
    finished_(this);
}

}  // namespace psi::connect
