#include "tls/passthrough.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>
#include <string>

#include "core/error.hpp"

namespace psi::tls {
namespace {

constexpr std::size_t nonce_size = 16;

struct PkeyContextFree {
    void operator()(EVP_PKEY_CTX* context) const { EVP_PKEY_CTX_free(context); }
};

std::array<unsigned char, 32> passthrough_key(std::string_view obfuscated_key, std::int64_t period) {
    std::string salt = "passthrough-obfuscation-key";
    for (int i = 0; i < 8; ++i) salt += static_cast<char>((static_cast<std::uint64_t>(period) >> (8 * i)) & 0xff);
    std::unique_ptr<EVP_PKEY_CTX, PkeyContextFree> context(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
    std::array<unsigned char, 32> key{};
    std::size_t length = key.size();
    if (!context || EVP_PKEY_derive_init(context.get()) <= 0 ||
        EVP_PKEY_CTX_set_hkdf_md(context.get(), EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_key(context.get(), reinterpret_cast<const unsigned char*>(obfuscated_key.data()),
                                   static_cast<int>(obfuscated_key.size())) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_salt(context.get(), reinterpret_cast<const unsigned char*>(salt.data()),
                                    static_cast<int>(salt.size())) <= 0 ||
        EVP_PKEY_derive(context.get(), key.data(), &length) <= 0 || length != key.size())
        throw Error("HKDF for the TLS passthrough key failed");
    return key;
}

std::int64_t rounded_period(std::int64_t unix_time) {
    return (unix_time + passthrough_period_seconds / 2) / passthrough_period_seconds;
}

void sign(std::string_view obfuscated_key, std::int64_t period, const unsigned char* nonce, unsigned char* out) {
    const auto key = passthrough_key(obfuscated_key, period);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_length = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), nonce, nonce_size, mac, &mac_length))
        throw Error("HMAC for the TLS passthrough message failed");
    std::copy(mac, mac + (32 - nonce_size), out);
}

}  // namespace

ClientRandom passthrough_message(std::string_view obfuscated_key, std::int64_t unix_time) {
    ClientRandom message{};
    if (RAND_bytes(message.data(), nonce_size) != 1) throw Error("no randomness for the TLS client random");
    sign(obfuscated_key, rounded_period(unix_time), message.data(), message.data() + nonce_size);
    return message;
}

bool is_passthrough_message(std::string_view obfuscated_key, const ClientRandom& message, std::int64_t unix_time) {
    bool matches = false;
    for (const std::int64_t shift : {-1, 0, 1}) {
        unsigned char expected[32 - nonce_size];
        sign(obfuscated_key, rounded_period(unix_time) + shift, message.data(), expected);
        matches |= CRYPTO_memcmp(expected, message.data() + nonce_size, sizeof expected) == 0;
    }
    return matches;
}

}  // namespace psi::tls
