#include "core/crypto.hpp"

#include "core/error.hpp"

namespace psi::crypto {
namespace {

std::string digest(std::string_view bytes, const EVP_MD* type, const char* name) {
    unsigned char output[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), output, &length, type, nullptr) != 1)
        throw Error(std::string(name) + " failed");
    return std::string(reinterpret_cast<char*>(output), length);
}

}  // namespace

std::string sha256(std::string_view bytes) { return digest(bytes, EVP_sha256(), "SHA-256"); }
std::string sha1(std::string_view bytes) { return digest(bytes, EVP_sha1(), "SHA-1"); }

}  // namespace psi::crypto
