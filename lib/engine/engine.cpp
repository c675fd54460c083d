#include "engine/engine.hpp"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"
#include "packet/packet_builder.hpp"
#include "tun/tun_device.hpp"

namespace psi::engine {

using packet::PacketError;
using packet::PacketView;
using packet::Reassembler;
using packet::Unreachable;
using packet::build_unreachable;
using packet::parse_packet;
using tun::vnet_header_size;

namespace {

using namespace std::chrono_literals;

// A TSO superpacket is up to 64 KiB of TCP after a 40-byte IPv6 header.
constexpr std::size_t buffer_size = vnet_header_size + 65535 + 40 + 64;
constexpr int packets_per_wakeup = 64;  // then the sockets get their turn

}  // namespace

Engine::Engine(EventLoop& loop, UniqueFd tun, EngineSettings settings, std::unique_ptr<TcpFastPath> fast_path)
    : loop_(loop),
      tun_(std::move(tun)),
      settings_(std::move(settings)),
      fast_path_(std::move(fast_path)),
      context_{loop_, settings_, *this, stats_, proxy_health_, icmp_budget_, fast_path_.get()},
      buffer_(buffer_size) {
    tcp_ = std::make_unique<TcpNat>(context_);
    udp_ = std::make_unique<UdpRelay>(context_);
    loop_.add(tun_.get(), EPOLLIN, [this](std::uint32_t) { on_readable(); });
    loop_.every(1000ms, [this] {
        const Clock::time_point now = Clock::now();
        tcp_->collect_garbage(now);
        udp_->collect_garbage(now);
        for (std::size_t expired = fragments_.expire(now); expired > 0; --expired) stats_.count(Drop::fragment);
    });
}

Engine::~Engine() {
    loop_.remove(tun_.get());
    udp_.reset();
    tcp_.reset();
}

const EngineStats& Engine::stats() {
    stats_.tcp_flows_active = tcp_->active_flows();
    stats_.udp_sessions_active = udp_->active_sessions();
    stats_.is_fast_path_on = fast_path_ != nullptr;
    if (fast_path_) stats_.packets_fast_path = fast_path_->packets();
    return stats_;
}

void Engine::on_readable() {
    for (int i = 0; i < packets_per_wakeup; ++i) {
        const ssize_t length = ::read(tun_.get(), buffer_.data(), buffer_.size());
        if (length < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            if (errno == EBADFD || errno == EIO)
                throw Error(settings_.tun_name + " went away (psi-tun down, or deleted): the engine stops");
            throw_system_error("cannot read from " + settings_.tun_name, errno);
        }
        ++stats_.packets_read;
        if (static_cast<std::size_t>(length) <= vnet_header_size) {
            stats_.count(Drop::malformed);
            continue;
        }
        VnetHeader header{};
        std::memcpy(&header, buffer_.data(), vnet_header_size);
        try {
            handle(std::span(buffer_).subspan(vnet_header_size, static_cast<std::size_t>(length) - vnet_header_size),
                   header);
        } catch (const Error& error) {
            // One packet the engine cannot handle costs that packet, never the engine.
            stats_.count(Drop::malformed);
            log::debug(std::string("dropped a packet: ") + error.what());
        }
    }
}

void Engine::handle(std::span<std::uint8_t> packet, const VnetHeader& header) {
    if (Reassembler::is_fragment(packet)) {
        ++stats_.fragments;
        if (auto whole = fragments_.add(packet, Clock::now()); whole && !Reassembler::is_fragment(*whole)) {
            ++stats_.datagrams_reassembled;
            handle(*whole, VnetHeader{});
        }
        return;
    }
    const auto parsed = parse_packet(packet);
    if (const auto* error = std::get_if<PacketError>(&parsed)) {
        stats_.count(*error == PacketError::fragment            ? Drop::fragment
                     : *error == PacketError::extension_headers ? Drop::extension_headers
                                                                : Drop::malformed);
        return;
    }
    const PacketView& view = std::get<PacketView>(parsed);
    if (view.protocol == packet::ip_protocol::tcp) return tcp_->on_packet(packet, view, header);
    if (view.protocol == packet::ip_protocol::udp) return udp_->on_packet(packet, view);
    stats_.count(Drop::not_tcp_or_udp);
    if (icmp_budget_.allows(packet, view))
        send(build_unreachable(packet, view, Unreachable::administratively_prohibited));
}

void Engine::send(std::span<const std::uint8_t> packet, const VnetHeader* header) {
    static const VnetHeader no_offload{};
    iovec parts[2] = {
        {const_cast<VnetHeader*>(header ? header : &no_offload), vnet_header_size},
        {const_cast<std::uint8_t*>(packet.data()), packet.size()},
    };
    if (::writev(tun_.get(), parts, 2) < 0) {
        stats_.count(Drop::tun_write_failed);
        return;
    }
    ++stats_.packets_written;
}

}  // namespace psi::engine
