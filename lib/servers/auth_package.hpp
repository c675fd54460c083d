// Psiphon's authenticated data package (docs/protocol.md §2.2): zlib of a JSON object
// {data, signingPublicKeyDigest, signature}; RSA PKCS#1 v1.5 with SHA-256 over `data`.
// Nothing inside `data` is looked at before the signature has been verified.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace psi::servers {

struct PackageLimits {
    std::size_t max_decompressed = 256u << 20;  // a zip bomb stops here
};

// Returns `data` of a package signed by `public_key_base64` (the config's
// RemoteServerListSignaturePublicKey: base64 of a DER SubjectPublicKeyInfo). Throws psi::Error
// with a one-line reason: not zlib data, truncated, too large, not a package, wrong key digest,
// bad signature.
std::string open_authenticated_package(std::string_view compressed, const std::string& public_key_base64,
                                       const PackageLimits& limits = {});

}  // namespace psi::servers
