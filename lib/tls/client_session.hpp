// A GnuTLS client session over a connected socket, with psi's ClientHello (browser_profile.hpp).
// GnuTLS rather than OpenSSL because the passthrough message must be the ClientHello random:
// gnutls_handshake_set_random sets it, and OpenSSL has no public call for it.
#pragma once

#include <gnutls/gnutls.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tls/passthrough.hpp"

namespace psi::tls {

struct ClientOptions {
    std::string server_name;        // SNI; empty sends none, as a browser does to an address
    std::vector<std::string> alpn;  // in order of preference; empty: the profile's
    std::optional<ClientRandom> client_random;
    // Both set: the server's certificate must chain to this file's CAs and name verify_name.
    // Otherwise it is not checked: SSH inside authenticates the server by its pinned key.
    std::string trusted_ca_file;
    std::string verify_name;
};

class ClientSession {
public:
    ClientSession(int socket, const ClientOptions& options);  // does not own the socket

    gnutls_session_t get() const { return session_.get(); }
    // One step of the handshake: true once done, false when it must wait for the socket
    // (is_waiting_to_write says which way). Throws psi::Error naming the TLS failure.
    bool handshake_step();
    bool is_waiting_to_write() const { return gnutls_record_get_direction(session_.get()) == 1; }
    std::string negotiated() const;  // "TLS1.3 AES-128-GCM"

private:
    struct CredentialsFree {
        void operator()(gnutls_certificate_credentials_t credentials) const {
            gnutls_certificate_free_credentials(credentials);
        }
    };
    struct SessionFree {
        void operator()(gnutls_session_t session) const { gnutls_deinit(session); }
    };
    std::unique_ptr<gnutls_certificate_credentials_st, CredentialsFree> credentials_;
    std::unique_ptr<gnutls_session_int, SessionFree> session_;  // declared last: freed first
};

}  // namespace psi::tls
