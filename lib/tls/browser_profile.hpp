// The ClientHello psi sends over every TLS transport, shaped after a current Firefox
// (docs/tls-fingerprint.md): a censor that classifies TLS clients by their ClientHello (JA3, JA4)
// should see a browser, not a TLS library's defaults.
#pragma once

#include <gnutls/gnutls.h>

#include <string_view>

namespace psi::tls {

// Firefox's cipher suites, groups and signature algorithms, in its order, as a GnuTLS priority.
std::string_view browser_priority();
// The ALPN list Firefox offers.
constexpr std::string_view browser_alpn[] = {"h2", "http/1.1"};
// Adds to the session the extensions Firefox sends that GnuTLS does not.
void add_browser_extensions(gnutls_session_t session);

}  // namespace psi::tls
