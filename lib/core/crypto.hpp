// The few OpenSSL pieces psi uses in several places: digests, and owners for OpenSSL objects.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

namespace psi::crypto {

struct PkeyFree {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdContextFree {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MdContext = std::unique_ptr<EVP_MD_CTX, MdContextFree>;

std::string sha256(std::string_view bytes);  // raw 32 bytes
std::string sha1(std::string_view bytes);    // raw 20 bytes

}  // namespace psi::crypto
