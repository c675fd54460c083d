// TLS-OSSH (docs/protocol.md §3.7): OSSH inside TLS to the entry's tlsOSSHPort (or its meek
// port, which serves both), the ClientHello random carrying the passthrough message made from
// the entry's meekObfuscatedKey, the SNI a random host name or none, one chance in two each,
// as Psiphon's client does. The certificate is not checked: SSH authenticates the server.
#include <openssl/rand.h>

#include <ctime>
#include <memory>
#include <string>

#include "connect/host_name.hpp"
#include "connect/ossh_carrier.hpp"
#include "connect/tcp_connect.hpp"
#include "core/error.hpp"

namespace psi::connect {
namespace {

bool coin_flip() {
    unsigned char byte = 0;
    if (RAND_bytes(&byte, 1) != 1) throw Error("no randomness");
    return byte & 1;
}

class TlsOsshTransport final : public OsshCarrier {
    std::unique_ptr<NetworkStream> open_stream(const TransportRequest& request) override {
        const std::string key = request.entry.string_value("meekObfuscatedKey");
        if (key.empty()) throw Error("the entry has no meekObfuscatedKey for TLS-OSSH");
        UniqueFd network = connect_tcp(request);
        tls::ClientOptions options;
        if (coin_flip()) options.server_name = random_host_name();
        options.client_random = tls::passthrough_message(key, std::time(nullptr));
        return make_tls_stream(std::move(network), options, request);
    }
};

}  // namespace

std::unique_ptr<Transport> make_tls_ossh_transport() { return std::make_unique<TlsOsshTransport>(); }

}  // namespace psi::connect
