#include "tls/browser_profile.hpp"

#include "core/error.hpp"

namespace psi::tls {

std::string_view browser_priority() {
    return "NONE:+VERS-TLS1.3:+VERS-TLS1.2"
           ":+AES-128-GCM:+CHACHA20-POLY1305:+AES-256-GCM:+AES-256-CBC:+AES-128-CBC"
           ":+AEAD:+SHA1:+ECDHE-ECDSA:+ECDHE-RSA:+RSA:+COMP-NULL"
           ":+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:+GROUP-FFDHE2048:+GROUP-FFDHE3072"
           ":+SIGN-ECDSA-SECP256R1-SHA256:+SIGN-ECDSA-SECP384R1-SHA384:+SIGN-ECDSA-SECP521R1-SHA512"
           ":+SIGN-RSA-PSS-RSAE-SHA256:+SIGN-RSA-PSS-RSAE-SHA384:+SIGN-RSA-PSS-RSAE-SHA512"
           ":+SIGN-RSA-SHA256:+SIGN-RSA-SHA384:+SIGN-RSA-SHA512:+SIGN-ECDSA-SHA1:+SIGN-RSA-SHA1"
           ":%NO_ETM";
}

void add_browser_extensions(gnutls_session_t) {}

}  // namespace psi::tls
