#include "ssh/obfuscator.hpp"

#include <openssl/evp.h>
#include <openssl/provider.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <string>
#include <utility>

#include "core/byte_reader.hpp"
#include "core/crypto.hpp"
#include "core/error.hpp"

namespace psi::ssh {
namespace {

constexpr int key_derivation_iterations = 6000;
constexpr std::size_t max_line_size = 1024;  // Go's SSH_MAX_SERVER_LINE_LENGTH, CRLF included
constexpr std::size_t max_padding_lines_size = obfuscation_max_padding + max_line_size;
constexpr std::uint32_t max_packet_length = 256 * 1024;
constexpr std::uint8_t ssh_msg_newkeys = 21;
constexpr std::string_view version_line_start = "SSH-";
constexpr std::string_view server_diagnosis = ": not an OSSH server (is the obfuscation keyword right?)";
constexpr std::string_view client_diagnosis = ": libssh wrote something that is not SSH";

struct LibraryContextFree {
    void operator()(OSSL_LIB_CTX* context) const { OSSL_LIB_CTX_free(context); }
};
struct ProviderUnload {
    void operator()(OSSL_PROVIDER* provider) const { OSSL_PROVIDER_unload(provider); }
};
struct CipherFree {
    void operator()(EVP_CIPHER* cipher) const { EVP_CIPHER_free(cipher); }
};
struct CipherContextFree {
    void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
struct DigestFree {
    void operator()(EVP_MD* digest) const { EVP_MD_free(digest); }
};

// RC4 is in OpenSSL 3's legacy provider. It is loaded into a library context of its own, so the
// rest of the process keeps OpenSSL's default providers and configuration as they are.
class Rc4Cipher {
public:
    Rc4Cipher() : context_(OSSL_LIB_CTX_new()) {
        if (!context_) throw Error("OpenSSL: cannot create a library context for RC4");
        provider_.reset(OSSL_PROVIDER_load(context_.get(), "legacy"));
        if (!provider_)
            throw Error("OpenSSL's legacy provider (ossl-modules/legacy.so) cannot be loaded; OSSH needs its RC4");
        cipher_.reset(EVP_CIPHER_fetch(context_.get(), "RC4", nullptr));
        if (!cipher_) throw Error("OpenSSL's legacy provider has no RC4");
    }
    const EVP_CIPHER* get() const { return cipher_.get(); }

private:
    // Declared in the order they must be freed backwards: cipher, provider, context.
    std::unique_ptr<OSSL_LIB_CTX, LibraryContextFree> context_;
    std::unique_ptr<OSSL_PROVIDER, ProviderUnload> provider_;
    std::unique_ptr<EVP_CIPHER, CipherFree> cipher_;
};

const EVP_CIPHER* rc4_cipher() {
    static const Rc4Cipher cipher;
    return cipher.get();
}

// Fetched once: the key derivation runs 6000 digests, and an implicit fetch per digest would
// make it four times slower.
const EVP_MD* sha1_digest() {
    static const std::unique_ptr<EVP_MD, DigestFree> digest(EVP_MD_fetch(nullptr, "SHA1", nullptr));
    if (!digest) throw Error("OpenSSL has no SHA-1");
    return digest.get();
}

void append_u32(std::string& out, std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(value >> shift & 0xff);
}

std::uint8_t* bytes_of(std::string& text) { return reinterpret_cast<std::uint8_t*>(text.data()); }

bool ends_with_crlf(const std::string& line) { return line.size() >= 2 && line.ends_with("\r\n"); }

// Follows SSH binary packets through plaintext to the end of the first SSH_MSG_NEWKEYS packet,
// where the obfuscation stops. Before NEWKEYS there is no MAC: a packet is 4 + packet_length bytes.
// It never buffers more than a packet's first 6 bytes (length, padding length, message number).
class PacketScanner {
public:
    // `side` and `diagnosis` make the error messages: "<side> SSH packet ...<diagnosis>".
    PacketScanner(std::string side, std::string_view diagnosis) : side_(std::move(side)), diagnosis_(diagnosis) {}

    // How many of the next bytes are certainly before the NEWKEYS boundary; 0 once past it.
    std::size_t span() const {
        if (is_past_newkeys_) return 0;
        if (header_size_ < header_.size()) return header_.size() - header_size_;
        return body_left_;
    }

    // Takes the next plaintext bytes, at most span() of them.
    void consume(std::span<const std::uint8_t> bytes) {
        if (header_size_ < header_.size()) {
            std::copy(bytes.begin(), bytes.end(), header_.begin() + static_cast<std::ptrdiff_t>(header_size_));
            header_size_ += bytes.size();
            if (header_size_ == header_.size()) start_packet();
            return;
        }
        body_left_ -= bytes.size();
        if (body_left_ == 0) end_packet();
    }

    bool is_past_newkeys() const { return is_past_newkeys_; }

private:
    void start_packet() {
        ByteReader header(header_);
        const std::uint32_t packet_length = header.u32();
        const std::uint8_t padding_length = header.u8();
        const std::uint8_t message_number = header.u8();
        if (packet_length > max_packet_length)
            throw Error(side_ + " SSH packet length " + std::to_string(packet_length) + " is over " +
                        std::to_string(max_packet_length) + " before NEWKEYS" + std::string(diagnosis_));
        // padding_length byte + at least the message number + padding
        if (packet_length < 2u + padding_length)
            throw Error(side_ + " SSH packet length " + std::to_string(packet_length) + " leaves no room for " +
                        std::to_string(padding_length) + " bytes of padding and a message" + std::string(diagnosis_));
        is_newkeys_ = message_number == ssh_msg_newkeys;
        body_left_ = packet_length - 2;
        if (body_left_ == 0) end_packet();
    }

    void end_packet() {
        header_size_ = 0;
        if (is_newkeys_) is_past_newkeys_ = true;
    }

    std::string side_;
    std::string_view diagnosis_;
    std::array<std::uint8_t, 6> header_{};
    std::size_t header_size_ = 0;
    std::size_t body_left_ = 0;
    bool is_newkeys_ = false;
    bool is_past_newkeys_ = false;
};

}  // namespace

Rc4Key derive_obfuscation_key(const ObfuscationSeed& seed, std::string_view keyword, std::string_view iv) {
    crypto::MdContext context(EVP_MD_CTX_new());
    if (!context) throw Error("OpenSSL: cannot allocate a digest context");
    const EVP_MD* sha1 = sha1_digest();
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_size = 0;

    bool is_ok = EVP_DigestInit_ex2(context.get(), sha1, nullptr) == 1 &&
                 EVP_DigestUpdate(context.get(), seed.data(), seed.size()) == 1 &&
                 EVP_DigestUpdate(context.get(), keyword.data(), keyword.size()) == 1 &&
                 EVP_DigestUpdate(context.get(), iv.data(), iv.size()) == 1 &&
                 EVP_DigestFinal_ex(context.get(), digest, &digest_size) == 1;
    for (int round = 0; is_ok && round < key_derivation_iterations; ++round) {
        // Update has read the whole input before Final overwrites it, so one buffer serves both.
        is_ok = EVP_DigestInit_ex2(context.get(), sha1, nullptr) == 1 &&
                EVP_DigestUpdate(context.get(), digest, digest_size) == 1 &&
                EVP_DigestFinal_ex(context.get(), digest, &digest_size) == 1;
    }
    if (!is_ok || digest_size < Rc4Key{}.size()) throw Error("SHA-1 failed while deriving the OSSH key");

    Rc4Key key;
    std::copy_n(digest, key.size(), key.begin());
    return key;
}

struct Rc4Stream::State {
    std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree> context;
};

Rc4Stream::Rc4Stream(const Rc4Key& key) : state_(std::make_unique<State>()) {
    state_->context.reset(EVP_CIPHER_CTX_new());
    if (!state_->context) throw Error("OpenSSL: cannot allocate a cipher context");
    if (EVP_EncryptInit_ex2(state_->context.get(), rc4_cipher(), nullptr, nullptr, nullptr) != 1 ||
        EVP_CIPHER_CTX_set_key_length(state_->context.get(), static_cast<int>(key.size())) != 1 ||
        EVP_EncryptInit_ex2(state_->context.get(), nullptr, key.data(), nullptr, nullptr) != 1)
        throw Error("OpenSSL: cannot set up RC4");
}

Rc4Stream::~Rc4Stream() = default;

void Rc4Stream::apply(std::uint8_t* bytes, std::size_t size) {
    while (size > 0) {
        const int chunk = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
        int written = 0;
        if (EVP_EncryptUpdate(state_->context.get(), bytes, &written, bytes, chunk) != 1 || written != chunk)
            throw Error("OpenSSL: RC4 failed");
        bytes += chunk;
        size -= static_cast<std::size_t>(chunk);
    }
}

struct ClientObfuscator::State {
    State(std::string_view keyword, const ObfuscationSeed& seed_)
        : seed(seed_),
          client_to_server(derive_obfuscation_key(seed_, keyword, "client_to_server")),
          server_to_client(derive_obfuscation_key(seed_, keyword, "server_to_client")) {}

    ObfuscationSeed seed;
    Rc4Stream client_to_server;
    Rc4Stream server_to_client;

    // Outbound: the preamble, then the client's version line, then packets.
    bool has_preamble = false;
    bool is_in_client_version_line = true;
    std::size_t client_version_line_size = 0;
    bool was_carriage_return = false;
    PacketScanner client_packets{"the client's", client_diagnosis};
    bool has_outbound_failed = false;

    // Inbound: padding lines and the version line (one line held at a time), then packets.
    bool is_in_server_lines = true;
    std::string server_line;
    std::size_t padding_lines_size = 0;
    PacketScanner server_packets{"the server's", server_diagnosis};
    bool has_inbound_failed = false;

    std::string outbound(std::string_view bytes);
    std::string inbound(std::string_view bytes);
};

std::string ClientObfuscator::State::outbound(std::string_view bytes) {
    std::string out(bytes);
    ByteReader plaintext(bytes);
    while (!plaintext.at_end() && !client_packets.is_past_newkeys()) {
        const std::size_t done = plaintext.consumed();
        if (is_in_client_version_line) {
            const std::uint8_t byte = plaintext.u8();
            if (++client_version_line_size > max_line_size)
                throw Error("the client's SSH version line is longer than " + std::to_string(max_line_size) +
                            " bytes" + std::string(client_diagnosis));
            is_in_client_version_line = !(was_carriage_return && byte == '\n');
            was_carriage_return = byte == '\r';
        } else {
            client_packets.consume(plaintext.take(std::min(client_packets.span(), plaintext.remaining())));
        }
        client_to_server.apply(bytes_of(out) + done, plaintext.consumed() - done);
    }
    return out;  // bytes past the client's NEWKEYS were left as they came
}

// Each byte is decrypted in place, in `in`, just before the reader reads it.
std::string ClientObfuscator::State::inbound(std::string_view bytes) {
    if (server_packets.is_past_newkeys()) return std::string(bytes);  // the bulk of the traffic
    std::string in(bytes);
    ByteReader plaintext(in);
    std::string out;
    out.reserve(in.size());
    while (!plaintext.at_end() && !server_packets.is_past_newkeys()) {
        const std::size_t done = plaintext.consumed();
        std::uint8_t* next = bytes_of(in) + done;
        if (is_in_server_lines) {
            // One byte at a time: the line's end decides what the next bytes are.
            server_to_client.apply(next, 1);
            server_line += static_cast<char>(plaintext.u8());
            if (!ends_with_crlf(server_line)) {
                if (server_line.size() >= max_line_size)
                    throw Error("the server sent a line longer than " + std::to_string(max_line_size) +
                                " bytes before its SSH version line" + std::string(server_diagnosis));
                continue;
            }
            if (server_line.starts_with(version_line_start)) {
                out += server_line;
                is_in_server_lines = false;
            } else {
                padding_lines_size += server_line.size();
                if (padding_lines_size > max_padding_lines_size)
                    throw Error("the server sent more than " + std::to_string(max_padding_lines_size) +
                                " bytes of padding lines before its SSH version line" +
                                std::string(server_diagnosis));
            }
            server_line.clear();
        } else {
            const std::size_t size = std::min(server_packets.span(), plaintext.remaining());
            server_to_client.apply(next, size);
            server_packets.consume(plaintext.take(size));
            out.append(in, done, size);
        }
    }
    out += plaintext.take_rest_text();  // past the server's NEWKEYS: raw
    return out;
}

ClientObfuscator::ClientObfuscator(std::string_view keyword, const ObfuscationSeed& seed)
    : state_(std::make_unique<State>(keyword, seed)) {}

ClientObfuscator::~ClientObfuscator() = default;

std::string ClientObfuscator::preamble(std::string_view padding) {
    if (state_->has_preamble) throw Error("the OSSH preamble was already sent on this connection");
    if (padding.size() > obfuscation_max_padding)
        throw Error("OSSH preamble padding of " + std::to_string(padding.size()) + " bytes is over the " +
                    std::to_string(obfuscation_max_padding) + " byte limit");
    std::string obfuscated;
    append_u32(obfuscated, obfuscation_magic);
    append_u32(obfuscated, static_cast<std::uint32_t>(padding.size()));
    obfuscated += padding;
    state_->client_to_server.apply(bytes_of(obfuscated), obfuscated.size());
    state_->has_preamble = true;
    return std::string(state_->seed.begin(), state_->seed.end()) + obfuscated;
}

// A stream that failed once stays failed: where it stopped in the keystream is unknown. The flag
// is set for the duration of the call, so any exception leaves it set.
std::string ClientObfuscator::outbound(std::string_view bytes) {
    if (!state_->has_preamble) throw Error("OSSH: the preamble must be sent before the SSH stream");
    if (state_->has_outbound_failed) throw Error("OSSH: the outbound stream already failed");
    state_->has_outbound_failed = true;
    std::string out = state_->outbound(bytes);
    state_->has_outbound_failed = false;
    return out;
}

std::string ClientObfuscator::inbound(std::string_view bytes) {
    if (state_->has_inbound_failed) throw Error("OSSH: the inbound stream already failed");
    state_->has_inbound_failed = true;
    std::string out = state_->inbound(bytes);
    state_->has_inbound_failed = false;
    return out;
}

bool ClientObfuscator::is_outbound_raw() const { return state_->client_packets.is_past_newkeys(); }

bool ClientObfuscator::is_inbound_raw() const { return state_->server_packets.is_past_newkeys(); }

}  // namespace psi::ssh
