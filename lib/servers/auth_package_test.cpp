#include "servers/auth_package.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <memory>

#include "core/crypto.hpp"
#include "core/encoding.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace psi::servers {
namespace {

using Key = crypto::Pkey;

Key make_rsa_key() { return Key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048))); }

std::string public_key_base64(EVP_PKEY* key) {
    unsigned char* der = nullptr;
    int length = i2d_PUBKEY(key, &der);
    std::string bytes(reinterpret_cast<char*>(der), static_cast<std::size_t>(length));
    OPENSSL_free(der);
    return encoding::base64_encode(bytes);
}

std::string sign(EVP_PKEY* key, const std::string& data) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestSignInit(context.get(), nullptr, EVP_sha256(), nullptr, key);
    size_t length = 0;
    EVP_DigestSign(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(data.data()), data.size());
    std::string signature(length, '\0');
    EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                   reinterpret_cast<const unsigned char*>(data.data()), data.size());
    signature.resize(length);
    return signature;
}

std::string compress(const std::string& text) {
    uLongf length = compressBound(text.size());
    std::string output(length, '\0');
    ::compress(reinterpret_cast<Bytef*>(output.data()), &length, reinterpret_cast<const Bytef*>(text.data()), text.size());
    output.resize(length);
    return output;
}

std::string package_json(const std::string& data, const std::string& key_text, const std::string& signature) {
    return "{\"data\":" + json::quote(data) + ",\"signingPublicKeyDigest\":\"" +
           encoding::base64_encode(crypto::sha256(key_text)) + "\",\"signature\":\"" + encoding::base64_encode(signature) +
           "\"}";
}

class AuthPackage : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        key_ = make_rsa_key().release();
        other_key_ = make_rsa_key().release();
    }
    static void TearDownTestSuite() {
        EVP_PKEY_free(key_);
        EVP_PKEY_free(other_key_);
    }
    std::string error_of(const std::string& package) {
        try {
            open_authenticated_package(package, public_key_base64(key_));
        } catch (const Error& error) {
            return error.what();
        }
        return "";
    }
    static inline EVP_PKEY* key_ = nullptr;
    static inline EVP_PKEY* other_key_ = nullptr;
    const std::string data_ = "line one\nline two with \"quotes\"\n";
};

TEST_F(AuthPackage, ReturnsTheDataOfAWellSignedPackage) {
    const std::string key_text = public_key_base64(key_);
    EXPECT_EQ(open_authenticated_package(compress(package_json(data_, key_text, sign(key_, data_))), key_text), data_);
}

TEST_F(AuthPackage, RejectsTamperedData) {
    const std::string key_text = public_key_base64(key_);
    std::string json = package_json(data_, key_text, sign(key_, data_));
    json.replace(json.find("one"), 3, "0ne");
    EXPECT_EQ(error_of(compress(json)), "remote server list rejected: the signature does not verify");
}

TEST_F(AuthPackage, RejectsASignatureByAnotherKey) {
    const std::string key_text = public_key_base64(key_);
    EXPECT_EQ(error_of(compress(package_json(data_, key_text, sign(other_key_, data_)))),
              "remote server list rejected: the signature does not verify");
}

TEST_F(AuthPackage, RejectsAPackageForAnotherKey) {
    EXPECT_EQ(error_of(compress(package_json(data_, public_key_base64(other_key_), sign(key_, data_)))),
              "remote server list rejected: it was signed for another key (signingPublicKeyDigest does not match)");
}

TEST_F(AuthPackage, RejectsWhatIsNotZlibOrIsTruncated) {
    const std::string key_text = public_key_base64(key_);
    const std::string json = package_json(data_, key_text, sign(key_, data_));
    EXPECT_EQ(error_of(json), "remote server list rejected: not zlib data");
    const std::string compressed = compress(json);
    EXPECT_EQ(error_of(compressed.substr(0, compressed.size() / 2)),
              "remote server list rejected: truncated (the zlib stream ends early)");
    EXPECT_EQ(error_of(compressed + "x"), "remote server list rejected: unexpected bytes after the zlib stream");
}

TEST_F(AuthPackage, RejectsMalformedPackages) {
    EXPECT_NE(error_of(compress("[1, 2]")).find("not a package"), std::string::npos);
    EXPECT_NE(error_of(compress("{\"data\": 5}")).find("no string \"data\""), std::string::npos);
    EXPECT_NE(error_of(compress("{\"data\": \"x\", \"signingPublicKeyDigest\": \"\", \"signature\": \"!!\"}")).find("another key"),
              std::string::npos);
}

TEST_F(AuthPackage, StopsAZipBombAtTheLimit) {
    const std::string huge(8u << 20, 'a');
    try {
        open_authenticated_package(compress(huge), public_key_base64(key_), PackageLimits{1u << 20});
        FAIL();
    } catch (const Error& error) {
        EXPECT_STREQ(error.what(), "remote server list rejected: it decompresses to more than 1 MiB");
    }
}

TEST_F(AuthPackage, AKeyThatIsNotBase64IsAConfigError) {
    try {
        open_authenticated_package("x", "not base64!");
        FAIL();
    } catch (const Error& error) {
        EXPECT_EQ(error.exit_code(), exit_status::usage);
    }
}

}  // namespace
}  // namespace psi::servers
