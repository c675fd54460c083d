#include "servers/auth_package.hpp"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <zlib.h>

#include <memory>

#include "core/crypto.hpp"
#include "core/encoding.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace psi::servers {
namespace {

[[noreturn]] void reject(const std::string& reason) { throw Error("remote server list rejected: " + reason); }

std::string inflate_bounded(std::string_view compressed, std::size_t limit) {
    z_stream stream{};
    if (inflateInit(&stream) != Z_OK) throw Error("cannot initialise zlib");
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&stream, inflateEnd);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    stream.avail_in = static_cast<uInt>(compressed.size());
    std::string output;
    char buffer[1 << 16];
    while (true) {
        stream.next_out = reinterpret_cast<Bytef*>(buffer);
        stream.avail_out = sizeof buffer;
        int result = inflate(&stream, Z_NO_FLUSH);
        output.append(buffer, sizeof buffer - stream.avail_out);
        if (output.size() > limit)
            reject("it decompresses to more than " + std::to_string(limit >> 20) + " MiB");
        if (result == Z_STREAM_END) break;
        if (result == Z_DATA_ERROR || result == Z_NEED_DICT) reject("not zlib data");
        if (result == Z_BUF_ERROR && stream.avail_in == 0) reject("truncated (the zlib stream ends early)");
        if (result != Z_OK && result != Z_BUF_ERROR) reject("zlib error " + std::to_string(result));
    }
    if (stream.avail_in != 0) reject("unexpected bytes after the zlib stream");
    return output;
}

bool verify_rsa_sha256(const std::string& public_key_der, std::string_view data, const std::string& signature) {
    const auto* cursor = reinterpret_cast<const unsigned char*>(public_key_der.data());
    crypto::Pkey key(d2i_PUBKEY(nullptr, &cursor, static_cast<long>(public_key_der.size())));
    if (!key) throw Error("RemoteServerListSignaturePublicKey is not a DER public key", exit_status::usage);
    if (EVP_PKEY_base_id(key.get()) != EVP_PKEY_RSA)
        throw Error("RemoteServerListSignaturePublicKey is not an RSA key", exit_status::usage);
    crypto::MdContext context(EVP_MD_CTX_new());
    if (!context || EVP_DigestVerifyInit(context.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1)
        throw Error("cannot set up RSA verification");
    return EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                            reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
}

const std::string& string_field(const json::Value& package, const char* name) {
    const json::Value* value = package.find(name);
    if (!value || !value->is_string()) reject(std::string("the package has no string \"") + name + "\"");
    return value->as_string();
}

}  // namespace

std::string open_authenticated_package(std::string_view compressed, const std::string& public_key_base64,
                                       const PackageLimits& limits) {
    const auto public_key_der = encoding::base64_decode(public_key_base64);
    if (!public_key_der)
        throw Error("RemoteServerListSignaturePublicKey is not base64", exit_status::usage);

    const std::string text = inflate_bounded(compressed, limits.max_decompressed);
    json::Value package;
    try {
        // An object of three strings: anything much larger is refused before it takes memory.
        package = json::parse(text, "package", 16);
    } catch (const Error& error) {
        reject(std::string("not a package: ") + error.what());
    }
    if (!package.is_object()) reject("not a package: not a JSON object");
    const std::string& data = string_field(package, "data");
    const std::string& digest = string_field(package, "signingPublicKeyDigest");
    const std::string& signature_base64 = string_field(package, "signature");

    // The digest is of the key's base64 text as configured, not of its DER bytes.
    if (encoding::base64_decode(digest) != crypto::sha256(public_key_base64))
        reject("it was signed for another key (signingPublicKeyDigest does not match)");
    const auto signature = encoding::base64_decode(signature_base64);
    if (!signature) reject("the signature is not base64");
    if (!verify_rsa_sha256(*public_key_der, data, *signature)) reject("the signature does not verify");
    return data;
}

}  // namespace psi::servers
