#include "tls/client_session.hpp"

#include <gnutls/x509.h>

#include "core/error.hpp"
#include "tls/browser_profile.hpp"

namespace psi::tls {
namespace {

void check(int result, const char* what) {
    if (result < 0) throw Error(std::string("TLS: ") + what + ": " + gnutls_strerror(result));
}

gnutls_datum_t datum_of(const void* data, std::size_t size) {
    return gnutls_datum_t{static_cast<unsigned char*>(const_cast<void*>(data)), static_cast<unsigned>(size)};
}

}  // namespace

ClientSession::ClientSession(int socket, const ClientOptions& options) {
    gnutls_certificate_credentials_t credentials = nullptr;
    check(gnutls_certificate_allocate_credentials(&credentials), "credentials");
    credentials_.reset(credentials);
    gnutls_session_t session = nullptr;
    check(gnutls_init(&session, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL), "init");
    session_.reset(session);
    const char* error_at = nullptr;
    check(gnutls_priority_set_direct(session, std::string(browser_priority()).c_str(), &error_at), "priority");
    check(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, credentials), "credentials");
    if (!options.server_name.empty())
        check(gnutls_server_name_set(session, GNUTLS_NAME_DNS, options.server_name.data(), options.server_name.size()),
              "server name");
    std::vector<gnutls_datum_t> protocols;
    if (options.alpn.empty()) {
        for (std::string_view protocol : browser_alpn) protocols.push_back(datum_of(protocol.data(), protocol.size()));
    } else {
        for (const std::string& protocol : options.alpn) protocols.push_back(datum_of(protocol.data(), protocol.size()));
    }
    check(gnutls_alpn_set_protocols(session, protocols.data(), static_cast<unsigned>(protocols.size()), 0), "ALPN");
    if (options.client_random) {
        const gnutls_datum_t random = datum_of(options.client_random->data(), options.client_random->size());
        check(gnutls_handshake_set_random(session, &random), "client random");
    }
    if (!options.trusted_ca_file.empty() && !options.verify_name.empty()) {
        const int loaded =
            gnutls_certificate_set_x509_trust_file(credentials, options.trusted_ca_file.c_str(), GNUTLS_X509_FMT_PEM);
        if (loaded <= 0) throw Error("TLS: no CA certificate in " + options.trusted_ca_file);
        gnutls_session_set_verify_cert(session, options.verify_name.c_str(), 0);
    }
    add_browser_extensions(session);
    gnutls_transport_set_int(session, socket);
}

bool ClientSession::handshake_step() {
    const int result = gnutls_handshake(session_.get());
    if (result == GNUTLS_E_SUCCESS) return true;
    if (result == GNUTLS_E_AGAIN || result == GNUTLS_E_INTERRUPTED) return false;
    if (result == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t text{};
        gnutls_certificate_verification_status_print(gnutls_session_get_verify_cert_status(session_.get()),
                                                     GNUTLS_CRT_X509, &text, 0);
        std::string reason = text.data ? reinterpret_cast<const char*>(text.data) : "not trusted";
        gnutls_free(text.data);
        throw Error("TLS: the server's certificate: " + reason);
    }
    if (!gnutls_error_is_fatal(result)) return false;
    throw Error(std::string("TLS: ") + gnutls_strerror(result));
}

std::string ClientSession::negotiated() const {
    const char* version = gnutls_protocol_get_name(gnutls_protocol_get_version(session_.get()));
    const char* cipher = gnutls_cipher_get_name(gnutls_cipher_get(session_.get()));
    return std::string(version ? version : "?") + " " + (cipher ? cipher : "?");
}

}  // namespace psi::tls
