// SOCKS5 (RFC 1928) as psi-connect serves it: no authentication; CONNECT and UDP ASSOCIATE;
// IPv4, IPv6 and domain-name addresses. Incremental parsers over untrusted bytes: each says
// whether it needs more bytes, has a complete message (and how many bytes it used), or the
// input is malformed (with a reply code to send before closing).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace psi::proxy {

enum class ParseStatus { need_more, complete, malformed };

enum class AddressType : std::uint8_t { ipv4 = 1, domain = 3, ipv6 = 4 };

struct SocksAddress {
    AddressType type = AddressType::ipv4;
    std::string host;  // dotted IPv4, IPv6 text, or the domain name as sent (1..255 bytes)
    std::uint16_t port = 0;
};

enum class SocksCommand : std::uint8_t { connect = 1, bind = 2, udp_associate = 3 };

// RFC 1928 reply codes.
enum class SocksReply : std::uint8_t {
    succeeded = 0,
    general_failure = 1,
    not_allowed = 2,
    network_unreachable = 3,
    host_unreachable = 4,
    connection_refused = 5,
    ttl_expired = 6,
    command_not_supported = 7,
    address_type_not_supported = 8,
};

struct Greeting {
    bool offers_no_authentication = false;  // method 0x00 among the offered ones
};

struct SocksRequest {
    SocksCommand command = SocksCommand::connect;
    SocksAddress destination;
};

template <class Message>
struct Parsed {
    ParseStatus status = ParseStatus::need_more;
    std::size_t consumed = 0;         // bytes of the input the message took (when complete)
    Message message{};
    SocksReply error = SocksReply::general_failure;  // when malformed
};

// VER=5, NMETHODS, METHODS.
Parsed<Greeting> parse_greeting(std::string_view bytes);
// "\x05\x00" (no authentication) or "\x05\xff" (no acceptable method).
std::string greeting_reply(bool is_accepted);

// VER=5, CMD, RSV=0, ATYP, DST.ADDR, DST.PORT. A domain of length 0 or with a NUL byte, an
// unknown ATYP (reply 8), an unknown command (reply 7), a bad version or RSV: malformed.
Parsed<SocksRequest> parse_request(std::string_view bytes);
// VER=5, REP, RSV=0, ATYP, BND.ADDR, BND.PORT; `bound` defaults to 0.0.0.0:0.
std::string request_reply(SocksReply reply, const SocksAddress& bound = {});

// UDP ASSOCIATE datagrams: RSV(2)=0, FRAG, ATYP, DST.ADDR, DST.PORT, DATA. Fragments
// (FRAG != 0) are not supported: nullopt, as for any malformed datagram.
struct UdpDatagram {
    SocksAddress destination;
    std::string payload;
};
std::optional<UdpDatagram> parse_udp_datagram(std::string_view bytes);
std::string encode_udp_datagram(const UdpDatagram& datagram);

std::string encode_address(const SocksAddress& address);  // ATYP, ADDR, PORT

// The client's side (psi-tun is a client of any SOCKS5 proxy).
// VER=5, NMETHODS=1, METHOD=0 (no authentication).
std::string no_authentication_greeting();
// VER=5, CMD, RSV=0, ATYP, DST.ADDR, DST.PORT.
std::string encode_request(SocksCommand command, const SocksAddress& destination);
// The server's VER, METHOD; malformed unless VER=5 and METHOD=0.
Parsed<Greeting> parse_method_choice(std::string_view bytes);
struct SocksReplyMessage {
    SocksReply reply = SocksReply::general_failure;
    SocksAddress bound;
};
// VER=5, REP, RSV=0, ATYP, BND.ADDR, BND.PORT.
Parsed<SocksReplyMessage> parse_reply(std::string_view bytes);
const char* reply_name(SocksReply reply);

}  // namespace psi::proxy
