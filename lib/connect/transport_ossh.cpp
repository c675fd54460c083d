// OSSH (docs/protocol.md §3): libssh speaks plain SSH over one end of a socketpair, and OsshPump
// carries the bytes between the other end and the TCP connection through the obfuscator keyed
// from the entry's sshObfuscatedKey, a fresh random seed and random padding each time.
#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "connect/ossh_pump.hpp"
#include "connect/tcp_connect.hpp"
#include "connect/transport.hpp"
#include "core/error.hpp"
#include "ssh/obfuscator.hpp"

namespace psi::connect {
namespace {

std::string random_padding() {
    unsigned char length_bytes[2];
    if (RAND_bytes(length_bytes, sizeof length_bytes) != 1) throw Error("no randomness for the OSSH padding");
    const std::size_t length = ((length_bytes[0] << 8) | length_bytes[1]) % (ssh::obfuscation_max_padding + 1);
    std::string padding(length, '\0');
    if (length && RAND_bytes(reinterpret_cast<unsigned char*>(padding.data()), static_cast<int>(length)) != 1)
        throw Error("no randomness for the OSSH padding");
    return padding;
}

class OsshTransport final : public Transport {
public:
    UniqueFd open(const TransportRequest& request) override {
        UniqueFd network = connect_tcp(request);
        dial_duration_ms_ = request.milliseconds_since_start();
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
            throw Error(std::string("socketpair: ") + std::strerror(errno));
        UniqueFd libssh_side(pair[0]);
        UniqueFd pump_side(pair[1]);
        request.cancellation.watch(libssh_side.get());
        ssh::ObfuscationSeed seed;
        if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) throw Error("no randomness for OSSH");
        auto obfuscator = std::make_unique<ssh::ClientObfuscator>(request.entry.string_value("sshObfuscatedKey"), seed);
        const std::string padding = random_padding();
        padding_length_ = padding.size();
        std::string preamble = obfuscator->preamble(padding);
        pump_ = std::make_unique<OsshPump>(make_socket_stream(std::move(network)), std::move(pump_side), std::move(obfuscator),
                                           std::move(preamble));
        const int flags = ::fcntl(libssh_side.get(), F_GETFL);
        ::fcntl(libssh_side.get(), F_SETFL, flags | O_NONBLOCK);
        return libssh_side;
    }

    void add_to(DialReport& report) const override {
        report.dial_duration_ms = dial_duration_ms_;
        report.upstream_ossh_padding = padding_length_;
    }

    std::string failure() const override { return pump_ ? pump_->failure() : std::string(); }

private:
    std::int64_t dial_duration_ms_ = 0;
    std::optional<std::size_t> padding_length_;
    std::unique_ptr<OsshPump> pump_;
};

}  // namespace

std::unique_ptr<Transport> make_ossh_transport() { return std::make_unique<OsshTransport>(); }

}  // namespace psi::connect
