#include "proxy/udpgw.hpp"

#include "core/byte_reader.hpp"
#include "core/error.hpp"

namespace psi::proxy {
namespace {

constexpr std::size_t flags_size = 1;
constexpr std::size_t connection_id_size = 2;
constexpr std::size_t port_size = 2;
constexpr std::size_t ipv4_size = 4;
constexpr std::size_t ipv6_size = 16;

std::size_t address_size(bool is_ipv6) { return is_ipv6 ? ipv6_size : ipv4_size; }

// What the size field must at least cover: flags, conid, address and port.
std::size_t smallest_frame(bool is_ipv6) {
    return flags_size + connection_id_size + address_size(is_ipv6) + port_size;
}

ParsedUdpgw malformed() {
    ParsedUdpgw parsed;
    parsed.status = ParseStatus::malformed;
    return parsed;
}

void append_u16_le(std::string& bytes, std::uint16_t value) {
    bytes += static_cast<char>(value & 0xff);
    bytes += static_cast<char>(value >> 8);
}

}  // namespace

std::string encode_udpgw(const UdpgwMessage& message) {
    if (message.address.size() != address_size(message.is_ipv6))
        throw Error("udpgw: an IPv" + std::string(message.is_ipv6 ? "6" : "4") + " address is " +
                    std::to_string(address_size(message.is_ipv6)) + " bytes, not " +
                    std::to_string(message.address.size()));
    if ((message.flags & udpgw_flags::ipv6) && !message.is_ipv6)
        throw Error("udpgw: the IPv6 flag is set on a message with an IPv4 address");
    if (message.payload.size() > udpgw_max_payload)
        throw Error("udpgw: a payload of " + std::to_string(message.payload.size()) + " bytes is over the " +
                    std::to_string(udpgw_max_payload) + "-byte limit");

    const std::size_t size = smallest_frame(message.is_ipv6) + message.payload.size();  // at most 32789
    std::string bytes;
    bytes.reserve(2 + size);
    append_u16_le(bytes, static_cast<std::uint16_t>(size));
    bytes += static_cast<char>(message.flags | (message.is_ipv6 ? udpgw_flags::ipv6 : 0));
    append_u16_le(bytes, message.connection_id);
    bytes += message.address;
    bytes += static_cast<char>(message.port >> 8);
    bytes += static_cast<char>(message.port & 0xff);
    bytes += message.payload;
    return bytes;
}

// The address length comes from the connection (psiphond sends flags=0 even for IPv6), or from
// the IPv6 flag should a server ever set it. Flag bits this side does not know pass through.
ParsedUdpgw parse_udpgw(std::string_view bytes, bool is_ipv6_connection) {
    ByteReader reader(bytes);
    ParsedUdpgw parsed;
    const std::uint16_t size = reader.u16_le();
    if (reader.is_short()) return parsed;
    if (size < flags_size + connection_id_size || size > smallest_frame(true) + udpgw_max_payload) return malformed();
    const std::uint8_t flags = reader.u8();
    if (reader.is_short()) return parsed;
    const bool is_ipv6 = is_ipv6_connection || (flags & udpgw_flags::ipv6);
    const bool is_keepalive = flags & udpgw_flags::keepalive;
    if ((!is_keepalive && size < smallest_frame(is_ipv6)) || size > smallest_frame(is_ipv6) + udpgw_max_payload)
        return malformed();
    ByteReader frame = reader.sub(size - flags_size);
    if (reader.is_short()) return parsed;

    // From here every read is within a frame whose size was checked above.
    UdpgwMessage& message = parsed.message;
    message.flags = flags;
    message.is_ipv6 = is_ipv6;
    message.connection_id = frame.u16_le();
    if (frame.is_short()) return malformed();
    if (!is_keepalive) {
        const std::string_view address = frame.take_text(address_size(is_ipv6));
        const std::uint16_t port = frame.u16();
        if (frame.is_short()) return malformed();
        message.address = std::string(address);
        message.port = port;
        message.payload = std::string(frame.take_rest_text());
    }
    parsed.status = ParseStatus::complete;
    parsed.consumed = reader.consumed();
    return parsed;
}

std::optional<std::uint16_t> peek_udpgw_connection_id(std::string_view bytes) {
    ByteReader reader(bytes);
    const std::uint16_t size = reader.u16_le();
    reader.skip(flags_size);
    const std::uint16_t connection_id = reader.u16_le();
    if (reader.is_short() || size < flags_size + connection_id_size) return std::nullopt;
    return connection_id;
}

}  // namespace psi::proxy
