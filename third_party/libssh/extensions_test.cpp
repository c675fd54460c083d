// Tests of psi's libssh patch (third_party/libssh/psi-extensions.patch): ssh_send_global_request()
// and ssh_channel_open_custom(), as psi uses them for Psiphon's API requests and channels.
//
// The client is the patched libssh, linked statically. The peer is a small SSH server written
// here on OpenSSL (curve25519-sha256, ssh-ed25519, aes128-ctr, hmac-sha2-256, password auth),
// running in a thread over a socketpair: libssh's own server API cannot stand in, because in 0.10
// it answers every global request it does not know with SSH_MSG_REQUEST_FAILURE itself, never
// sends data in SSH_MSG_REQUEST_SUCCESS, and hides the type name and data of channel opens it
// does not know. Being independent of libssh, this server also checks the bytes on the wire
// (Psiphon's request data is raw, with no length prefix) rather than libssh agreeing with itself.

#include <libssh/libssh.h>

#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "connect/ssh_handle.hpp"

namespace {

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }
std::string string_of(const Bytes& bytes) { return std::string(bytes.begin(), bytes.end()); }

// SSH message numbers (RFC 4250).
enum : uint8_t {
    kDisconnect = 1, kIgnore = 2, kUnimplemented = 3, kServiceRequest = 5, kServiceAccept = 6,
    kKexInit = 20, kNewKeys = 21, kKexEcdhInit = 30, kKexEcdhReply = 31,
    kUserauthRequest = 50, kUserauthFailure = 51, kUserauthSuccess = 52,
    kGlobalRequest = 80, kRequestSuccess = 81, kRequestFailure = 82,
    kChannelOpen = 90, kChannelOpenConfirmation = 91, kChannelOpenFailure = 92, kChannelWindowAdjust = 93,
    kChannelData = 94, kChannelEof = 96, kChannelClose = 97,
};

struct Writer {
    Bytes out;
    Writer& u8(uint8_t value) { out.push_back(value); return *this; }
    Writer& u32(uint32_t value) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(value >> shift));
        return *this;
    }
    Writer& raw(const Bytes& bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); return *this; }
    Writer& string(const Bytes& bytes) { return u32(uint32_t(bytes.size())).raw(bytes); }
    Writer& string(std::string_view text) { return string(bytes_of(text)); }
    Writer& mpint(const Bytes& big_endian) {
        size_t skip = 0;
        while (skip < big_endian.size() && big_endian[skip] == 0) ++skip;
        Bytes value(big_endian.begin() + long(skip), big_endian.end());
        if (!value.empty() && (value[0] & 0x80)) value.insert(value.begin(), 0);
        return string(value);
    }
};

struct Reader {
    const Bytes& in;
    size_t pos = 0;
    void need(size_t n) const {
        if (in.size() - pos < n) throw std::runtime_error("truncated message");
    }
    uint8_t u8() { need(1); return in[pos++]; }
    uint32_t u32() {
        need(4);
        uint32_t value = 0;
        for (int i = 0; i < 4; ++i) value = value << 8 | in[pos++];
        return value;
    }
    Bytes take(size_t n) {
        need(n);
        Bytes value(in.begin() + long(pos), in.begin() + long(pos + n));
        pos += n;
        return value;
    }
    Bytes string() { return take(u32()); }
    std::string text() { return string_of(string()); }
    Bytes rest() { return take(in.size() - pos); }
};

Bytes sha256(const Bytes& data) {
    Bytes digest(32);
    unsigned int length = 0;
    if (EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    return digest;
}

using Pkey = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

Pkey generate_key(const char* type) {
    Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, type), EVP_PKEY_free);
    if (!key) throw std::runtime_error(std::string("cannot generate a key of type ") + type);
    return key;
}

Bytes raw_public_key(EVP_PKEY* key) {
    Bytes value(32);
    size_t length = value.size();
    if (EVP_PKEY_get_raw_public_key(key, value.data(), &length) != 1 || length != 32)
        throw std::runtime_error("cannot export a public key");
    return value;
}

// What the server saw, for the tests to check.
struct GlobalRequest {
    std::string name;
    bool want_reply;
    Bytes data;
};
struct ChannelOpen {
    std::string type;
    uint32_t window, max_packet;
    Bytes data;
};

// How the server answers.
struct ServerScript {
    std::string user = "psi", password = R"({"SessionId":"00112233445566778899aabbccddeeff","SshPassword":"pw"})";
    std::map<std::string, Bytes> global_replies;  // request name -> SUCCESS data; others get FAILURE
    std::set<std::string> slow_requests;          // answered after 200 ms
    std::set<std::string> channel_types;          // accepted; others get OPEN_FAILURE "Prohibited"
};

// The channel data the server sends back for data it receives: the bytes reversed.
Bytes answer_to(Bytes data) { return Bytes(data.rbegin(), data.rend()); }

class TestServer {
public:
    TestServer(int fd, ServerScript script)
        : fd_(fd), script_(std::move(script)), host_key_(generate_key("ED25519")),
          host_key_blob_(Writer().string("ssh-ed25519").string(raw_public_key(host_key_.get())).out) {}
    ~TestServer() { close(fd_); }

    const Bytes& host_key_blob() const { return host_key_blob_; }

    // Runs the whole connection; any protocol error ends up in error().
    void run() {
        try {
            handshake();
            authenticate();
            serve();
        } catch (const std::exception& e) {
            std::lock_guard lock(mutex_);
            error_ = e.what();
        }
    }

    std::string error() { std::lock_guard lock(mutex_); return error_; }
    std::vector<GlobalRequest> global_requests() { std::lock_guard lock(mutex_); return global_requests_; }
    std::vector<ChannelOpen> channel_opens() { std::lock_guard lock(mutex_); return channel_opens_; }
    Bytes channel_data() { std::lock_guard lock(mutex_); return channel_data_; }

private:
    struct Direction {
        CipherCtx cipher{nullptr, EVP_CIPHER_CTX_free};
        Bytes mac_key;
        uint32_t sequence = 0;
    };

    // --- transport ------------------------------------------------------------------------------
    void read_exact(uint8_t* out, size_t n) {
        while (n > 0) {
            pollfd pfd{fd_, POLLIN, 0};
            if (poll(&pfd, 1, 10000) != 1) throw std::runtime_error("timed out waiting for the client");
            const ssize_t got = read(fd_, out, n);
            // A reset is how a client that closes with unread data goes away.
            if (got == 0 || (got < 0 && errno == ECONNRESET)) throw std::runtime_error("eof");
            if (got < 0) throw std::runtime_error(std::string("read: ") + strerror(errno));
            out += got;
            n -= size_t(got);
        }
    }
    void write_all(const Bytes& data) {
        size_t done = 0;
        while (done < data.size()) {
            const ssize_t put = send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            // The client may close while an answer is on its way (a test's TearDown): it went away.
            if (put < 0 && (errno == EPIPE || errno == ECONNRESET)) throw std::runtime_error("eof");
            if (put <= 0) throw std::runtime_error("write failed");
            done += size_t(put);
        }
    }
    static void crypt(Direction& d, uint8_t* data, size_t n) {
        int length = 0;
        if (EVP_CipherUpdate(d.cipher.get(), data, &length, data, int(n)) != 1 || size_t(length) != n)
            throw std::runtime_error("AES-CTR failed");
    }
    static Bytes mac(const Direction& d, const Bytes& packet) {
        Bytes input = Writer().u32(d.sequence).raw(packet).out, out(32);
        unsigned int length = 0;
        HMAC(EVP_sha256(), d.mac_key.data(), int(d.mac_key.size()), input.data(), input.size(), out.data(), &length);
        return out;
    }

    void send_packet(const Bytes& payload) {
        const size_t block = out_.cipher ? 16 : 8;
        size_t padding = block - (5 + payload.size()) % block;
        if (padding < 4) padding += block;
        Bytes pad(padding);
        RAND_bytes(pad.data(), int(pad.size()));
        Bytes packet = Writer().u32(uint32_t(1 + payload.size() + padding)).u8(uint8_t(padding)).raw(payload).raw(pad).out;
        if (out_.cipher) {
            const Bytes tag = mac(out_, packet);
            crypt(out_, packet.data(), packet.size());
            packet.insert(packet.end(), tag.begin(), tag.end());
        }
        write_all(packet);
        ++out_.sequence;
    }

    Bytes receive_packet() {
        const size_t block = in_.cipher ? 16 : 8;
        Bytes packet(block);
        read_exact(packet.data(), block);
        if (in_.cipher) crypt(in_, packet.data(), block);
        const uint32_t length = Reader{packet}.u32();
        if (length < 12 || length > 64 * 1024 || (4 + length) % block != 0)
            throw std::runtime_error("bad packet length " + std::to_string(length));
        packet.resize(4 + length);
        read_exact(packet.data() + block, packet.size() - block);
        if (in_.cipher) {
            crypt(in_, packet.data() + block, packet.size() - block);
            Bytes tag(32);
            read_exact(tag.data(), tag.size());
            if (CRYPTO_memcmp(tag.data(), mac(in_, packet).data(), tag.size()) != 0)
                throw std::runtime_error("bad MAC");
        }
        ++in_.sequence;
        const uint8_t padding = packet[4];
        if (padding < 4 || padding > length - 1) throw std::runtime_error("bad padding");
        return Bytes(packet.begin() + 5, packet.end() - padding);
    }

    // Next packet that is not IGNORE/DEBUG.
    Bytes expect(uint8_t type) {
        for (;;) {
            Bytes packet = receive_packet();
            if (packet.empty()) throw std::runtime_error("empty packet");
            if (packet[0] == kIgnore || packet[0] == 4 /* DEBUG */) continue;
            if (packet[0] != type)
                throw std::runtime_error("expected message " + std::to_string(type) + ", got " + std::to_string(packet[0]));
            return packet;
        }
    }

    // --- key exchange: curve25519-sha256, ssh-ed25519, aes128-ctr, hmac-sha2-256 ----------------
    void handshake() {
        const std::string server_version = "SSH-2.0-PsiTest_1.0";
        write_all(bytes_of(server_version + "\r\n"));
        std::string client_version;
        for (;;) {
            uint8_t c;
            read_exact(&c, 1);
            if (c == '\n') break;
            client_version += char(c);
            if (client_version.size() > 255) throw std::runtime_error("client version line too long");
        }
        if (!client_version.empty() && client_version.back() == '\r') client_version.pop_back();
        if (client_version.rfind("SSH-2.0-", 0) != 0) throw std::runtime_error("bad client version " + client_version);

        Bytes cookie(16);
        RAND_bytes(cookie.data(), 16);
        const Bytes server_kexinit = Writer()
                                         .u8(kKexInit).raw(cookie)
                                         .string("curve25519-sha256").string("ssh-ed25519")
                                         .string("aes128-ctr").string("aes128-ctr")
                                         .string("hmac-sha2-256").string("hmac-sha2-256")
                                         .string("none").string("none").string("").string("")
                                         .u8(0).u32(0).out;
        send_packet(server_kexinit);
        const Bytes client_kexinit = expect(kKexInit);

        const Bytes init = expect(kKexEcdhInit);
        Reader reader{init, 1};
        const Bytes client_public = reader.string();
        if (client_public.size() != 32) throw std::runtime_error("bad curve25519 public key");

        Pkey ephemeral = generate_key("X25519");
        const Bytes server_public = raw_public_key(ephemeral.get());
        Pkey peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, client_public.data(), 32), EVP_PKEY_free);
        std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> derive(EVP_PKEY_CTX_new(ephemeral.get(), nullptr),
                                                                           EVP_PKEY_CTX_free);
        Bytes shared(32);
        size_t shared_length = shared.size();
        if (!peer || !derive || EVP_PKEY_derive_init(derive.get()) != 1 ||
            EVP_PKEY_derive_set_peer(derive.get(), peer.get()) != 1 ||
            EVP_PKEY_derive(derive.get(), shared.data(), &shared_length) != 1 || shared_length != 32)
            throw std::runtime_error("X25519 failed");
        const Bytes k = Writer().mpint(shared).out;  // RFC 8731: the 32 bytes as a big-endian integer

        const Bytes exchange_hash = sha256(Writer()
                                               .string(client_version).string(server_version)
                                               .string(client_kexinit).string(server_kexinit)
                                               .string(host_key_blob_).string(client_public).string(server_public)
                                               .raw(k).out);
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> sign(EVP_MD_CTX_new(), EVP_MD_CTX_free);
        Bytes signature(64);
        size_t signature_length = signature.size();
        if (!sign || EVP_DigestSignInit(sign.get(), nullptr, nullptr, nullptr, host_key_.get()) != 1 ||
            EVP_DigestSign(sign.get(), signature.data(), &signature_length, exchange_hash.data(),
                           exchange_hash.size()) != 1)
            throw std::runtime_error("Ed25519 signature failed");

        send_packet(Writer()
                        .u8(kKexEcdhReply).string(host_key_blob_).string(server_public)
                        .string(Writer().string("ssh-ed25519").string(signature).out).out);
        send_packet({kNewKeys});
        // RFC 4253 7.2: HASH(K || H || letter || session_id); the session id is this first H.
        auto derive_key = [&](char letter, size_t size) {
            Bytes key = sha256(Writer().raw(k).raw(exchange_hash).u8(uint8_t(letter)).raw(exchange_hash).out);
            key.resize(size);
            return key;
        };
        start_cipher(out_, derive_key('B', 16), derive_key('D', 16), derive_key('F', 32), true);
        expect(kNewKeys);
        start_cipher(in_, derive_key('A', 16), derive_key('C', 16), derive_key('E', 32), false);
    }

    static void start_cipher(Direction& d, const Bytes& iv, const Bytes& key, const Bytes& mac_key, bool encrypt) {
        d.cipher.reset(EVP_CIPHER_CTX_new());
        if (!d.cipher ||
            EVP_CipherInit_ex(d.cipher.get(), EVP_aes_128_ctr(), nullptr, key.data(), iv.data(), encrypt ? 1 : 0) != 1)
            throw std::runtime_error("AES-CTR setup failed");
        d.mac_key = mac_key;
    }

    // --- ssh-userauth: password --------------------------------------------------------------------
    void authenticate() {
        const Bytes service = expect(kServiceRequest);
        Reader reader{service, 1};
        if (reader.text() != "ssh-userauth") throw std::runtime_error("unexpected service request");
        send_packet(Writer().u8(kServiceAccept).string("ssh-userauth").out);
        for (;;) {
            const Bytes request = expect(kUserauthRequest);
            Reader r{request, 1};
            const std::string user = r.text(), service_name = r.text(), method = r.text();
            if (method == "password" && r.u8() == 0 && user == script_.user && service_name == "ssh-connection" &&
                r.text() == script_.password) {
                send_packet({kUserauthSuccess});
                return;
            }
            send_packet(Writer().u8(kUserauthFailure).string("password").u8(0).out);
        }
    }

    // --- ssh-connection ----------------------------------------------------------------------------
    void serve() {
        try {
            serve_packets();
        } catch (const std::runtime_error& e) {
            if (std::string_view(e.what()) != "eof") throw;  // else the client went away without DISCONNECT
        }
    }

    void serve_packets() {
        std::map<uint32_t, uint32_t> channels;  // our channel id -> the client's
        for (;;) {
            const Bytes packet = receive_packet();
            Reader r{packet, 1};
            switch (packet.at(0)) {
            case kDisconnect:
                return;
            case kIgnore:
                break;
            case kGlobalRequest: {
                GlobalRequest request;
                request.name = r.text();
                request.want_reply = r.u8() != 0;
                request.data = r.rest();
                {
                    std::lock_guard lock(mutex_);
                    global_requests_.push_back(request);
                }
                if (script_.slow_requests.count(request.name))
                    std::this_thread::sleep_for(std::chrono::milliseconds(200));
                if (!request.want_reply) break;
                const auto reply = script_.global_replies.find(request.name);
                if (reply == script_.global_replies.end())
                    send_packet({kRequestFailure});
                else
                    send_packet(Writer().u8(kRequestSuccess).raw(reply->second).out);
                break;
            }
            case kChannelOpen: {
                ChannelOpen open;
                open.type = r.text();
                const uint32_t client_channel = r.u32();
                open.window = r.u32();
                open.max_packet = r.u32();
                open.data = r.rest();
                {
                    std::lock_guard lock(mutex_);
                    channel_opens_.push_back(open);
                }
                if (script_.channel_types.count(open.type)) {
                    const uint32_t ours = uint32_t(100 + channels.size());
                    channels[ours] = client_channel;
                    send_packet(Writer().u8(kChannelOpenConfirmation).u32(client_channel).u32(ours)
                                    .u32(1 << 20).u32(32768).out);
                } else {
                    send_packet(Writer().u8(kChannelOpenFailure).u32(client_channel).u32(1)
                                    .string("Prohibited").string("").out);
                }
                break;
            }
            case kChannelData: {
                const uint32_t ours = r.u32();
                const Bytes data = r.string();
                if (!channels.count(ours)) throw std::runtime_error("data for an unknown channel");
                {
                    std::lock_guard lock(mutex_);
                    channel_data_.insert(channel_data_.end(), data.begin(), data.end());
                }
                send_packet(Writer().u8(kChannelData).u32(channels[ours]).string(answer_to(data)).out);
                break;
            }
            case kChannelWindowAdjust:
            case kChannelEof:
                break;
            case kChannelClose: {
                const uint32_t ours = r.u32();
                if (channels.count(ours)) {
                    send_packet(Writer().u8(kChannelClose).u32(channels[ours]).out);
                    channels.erase(ours);
                }
                break;
            }
            default:
                send_packet(Writer().u8(kUnimplemented).u32(in_.sequence - 1).out);
                throw std::runtime_error("unexpected message " + std::to_string(packet[0]));
            }
        }
    }

    int fd_;
    ServerScript script_;
    Pkey host_key_;
    Bytes host_key_blob_;
    Direction in_, out_;
    std::mutex mutex_;
    std::string error_;
    std::vector<GlobalRequest> global_requests_;
    std::vector<ChannelOpen> channel_opens_;
    Bytes channel_data_;
};

// A Psiphon-like handshake: JSON request, JSON reply (docs/protocol.md section 5.1).
const std::string kHandshakeRequest =
    R"({"propagation_channel_id":"FFFFFFFFFFFFFFFF","sponsor_id":"FFFFFFFFFFFFFFFF","client_version":"1",)"
    R"("client_platform":"Linux","relay_protocol":"OSSH"})";
const std::string kHandshakeReply =
    R"({"ssh_session_id":"00112233445566778899aabbccddeeff","homepages":[],"upgrade_client_version":"",)"
    R"("page_view_regexes":[],"https_request_regexes":[],"encoded_server_list":[],"client_region":"CA",)"
    R"("client_address":"192.0.2.1:12345","server_timestamp":"2024-01-01T00:00:00Z"})";

using Buffer = psi::connect::SshBuffer;
using Channel = psi::connect::SshChannel;

Bytes bytes_of(ssh_buffer buffer) {
    const auto* data = static_cast<const uint8_t*>(ssh_buffer_get(buffer));
    return Bytes(data, data + ssh_buffer_get_len(buffer));
}

class LibsshExtensions : public ::testing::Test {
protected:
    static void SetUpTestSuite() { ASSERT_EQ(ssh_init(), SSH_OK); }  // required when libssh is linked statically

    void SetUp() override { script_ = default_script(); }

    static ServerScript default_script() {
        ServerScript script;
        script.global_replies["psiphon-handshake"] = bytes_of(kHandshakeReply);
        script.global_replies["keepalive@openssh.com"] = {};
        Bytes binary(20000);
        for (size_t i = 0; i < binary.size(); ++i) binary[i] = uint8_t(i * 7);  // zero bytes included
        script.global_replies["binary"] = binary;
        script.global_replies["slow"] = bytes_of("slow reply");
        script.slow_requests = {"slow"};
        script.channel_types = {"tun@psiphon.ca", "direct-tcpip"};
        return script;
    }

    // Starts the server and connects and authenticates the client.
    void connect(bool check_errors = true) {
        int fds[2];
        ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
        server_ = std::make_unique<TestServer>(fds[1], script_);
        thread_ = std::thread([this] { server_->run(); });

        session_.reset(ssh_new());
        ASSERT_NE(session(), nullptr);
        client_fd_ = fds[0];
        socket_t fd = fds[0];
        int no = 0;
        long timeout = 10;
        ASSERT_EQ(ssh_options_set(session(), SSH_OPTIONS_FD, &fd), SSH_OK);
        ASSERT_EQ(ssh_options_set(session(), SSH_OPTIONS_HOST, "psi-test"), SSH_OK);
        ASSERT_EQ(ssh_options_set(session(), SSH_OPTIONS_USER, script_.user.c_str()), SSH_OK);
        ASSERT_EQ(ssh_options_set(session(), SSH_OPTIONS_PROCESS_CONFIG, &no), SSH_OK);
        ASSERT_EQ(ssh_options_set(session(), SSH_OPTIONS_KNOWNHOSTS, "/dev/null"), SSH_OK);
        ASSERT_EQ(ssh_options_set(session(), SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null"), SSH_OK);
        ASSERT_EQ(ssh_options_set(session(), SSH_OPTIONS_TIMEOUT, &timeout), SSH_OK);
        ASSERT_EQ(ssh_connect(session()), SSH_OK) << ssh_get_error(session()) << " / server: " << server_->error();

        // The host key check psi does (docs/protocol.md section 4): the server's key blob, byte for byte.
        // libssh 0.10 has no public function returning the blob; its base64 form is the same check.
        ssh_key received = nullptr;
        ASSERT_EQ(ssh_get_server_publickey(session(), &received), SSH_OK);
        const psi::connect::SshKey key(received);
        char* exported = nullptr;
        ASSERT_EQ(ssh_pki_export_pubkey_base64(key.get(), &exported), SSH_OK);
        const psi::connect::SshString base64(exported);
        const Bytes& blob = server_->host_key_blob();
        std::string expected(4 * ((blob.size() + 2) / 3) + 1, '\0');
        expected.resize(size_t(EVP_EncodeBlock(reinterpret_cast<unsigned char*>(expected.data()), blob.data(),
                                               int(blob.size()))));
        EXPECT_EQ(std::string(base64.get()), expected);

        ASSERT_EQ(ssh_userauth_password(session(), nullptr, script_.password.c_str()), SSH_AUTH_SUCCESS)
            << ssh_get_error(session());
        check_errors_ = check_errors;
    }

    void TearDown() override {
        if (session()) {
            ssh_disconnect(session());
            session_.reset();
        }
        // libssh does not close a socket given with SSH_OPTIONS_FD, and drops its DISCONNECT when
        // the socket is not writable at once: closing it is what tells the server we are done.
        if (client_fd_ >= 0) close(client_fd_);
        if (thread_.joinable()) thread_.join();
        if (server_ && check_errors_) {
            EXPECT_EQ(server_->error(), "");
        }
    }

    ServerScript script_;
    std::unique_ptr<TestServer> server_;
    std::thread thread_;
    ssh_session session() const { return session_.get(); }

    psi::connect::SshSession session_;
    int client_fd_ = -1;
    bool check_errors_ = true;
};

TEST_F(LibsshExtensions, GlobalRequestSendsRawDataAndReturnsTheReply) {
    connect();
    Buffer reply(ssh_buffer_new());
    ASSERT_TRUE(reply);
    ssh_buffer_add_data(reply.get(), "stale", 5);  // replaced, not appended to

    ASSERT_EQ(ssh_send_global_request(session(), "psiphon-handshake", kHandshakeRequest.data(), kHandshakeRequest.size(),
                                      1, reply.get()),
              SSH_OK)
        << ssh_get_error(session());
    EXPECT_EQ(string_of(bytes_of(reply.get())), kHandshakeReply);

    const auto requests = server_->global_requests();
    ASSERT_EQ(requests.size(), 1u);
    EXPECT_EQ(requests[0].name, "psiphon-handshake");
    EXPECT_TRUE(requests[0].want_reply);
    EXPECT_EQ(requests[0].data, bytes_of(kHandshakeRequest));  // exactly the bytes, no length prefix
}

TEST_F(LibsshExtensions, GlobalRequestRepliesAreBinarySafeAndMayBeEmpty) {
    connect();
    Buffer reply(ssh_buffer_new());
    ASSERT_EQ(ssh_send_global_request(session(), "binary", "\0\1\2", 3, 1, reply.get()), SSH_OK) << ssh_get_error(session());
    EXPECT_EQ(bytes_of(reply.get()), script_.global_replies["binary"]);

    // keepalive@openssh.com with no data, as psi sends its keepalives: SUCCESS with nothing after it.
    ASSERT_EQ(ssh_send_global_request(session(), "keepalive@openssh.com", nullptr, 0, 1, reply.get()), SSH_OK);
    EXPECT_EQ(ssh_buffer_get_len(reply.get()), 0u);
    // The reply may be ignored.
    EXPECT_EQ(ssh_send_global_request(session(), "psiphon-handshake", "{}", 2, 1, nullptr), SSH_OK);

    const auto requests = server_->global_requests();
    ASSERT_EQ(requests.size(), 3u);
    EXPECT_EQ(requests[0].data, (Bytes{0, 1, 2}));
    EXPECT_EQ(requests[1].name, "keepalive@openssh.com");
    EXPECT_TRUE(requests[1].data.empty());
}

TEST_F(LibsshExtensions, RejectedGlobalRequestIsAnErrorAndTheSessionGoesOn) {
    connect();
    Buffer reply(ssh_buffer_new());
    ssh_buffer_add_data(reply.get(), "untouched", 9);
    EXPECT_EQ(ssh_send_global_request(session(), "psiphon-connected", "{}", 2, 1, reply.get()), SSH_ERROR);
    EXPECT_EQ(ssh_get_error_code(session()), SSH_REQUEST_DENIED);
    EXPECT_NE(std::string(ssh_get_error(session())).find("psiphon-connected"), std::string::npos) << ssh_get_error(session());
    EXPECT_EQ(string_of(bytes_of(reply.get())), "untouched");

    ASSERT_EQ(ssh_send_global_request(session(), "psiphon-handshake", kHandshakeRequest.data(), kHandshakeRequest.size(),
                                      1, reply.get()),
              SSH_OK)
        << ssh_get_error(session());
    EXPECT_EQ(string_of(bytes_of(reply.get())), kHandshakeReply);
}

TEST_F(LibsshExtensions, GlobalRequestWithoutWantReplyDoesNotWait) {
    connect();
    Buffer reply(ssh_buffer_new());
    ssh_buffer_add_data(reply.get(), "untouched", 9);
    // The server answers nothing when want_reply is 0 (and would refuse this name anyway).
    EXPECT_EQ(ssh_send_global_request(session(), "psiphon-status", "{\"a\":\"b\"}", 9, 0, reply.get()), SSH_OK);
    EXPECT_EQ(string_of(bytes_of(reply.get())), "untouched");
    // The next request gets its own reply, not a stale one.
    ASSERT_EQ(ssh_send_global_request(session(), "keepalive@openssh.com", nullptr, 0, 1, reply.get()), SSH_OK);
    EXPECT_EQ(ssh_buffer_get_len(reply.get()), 0u);

    const auto requests = server_->global_requests();
    ASSERT_EQ(requests.size(), 2u);
    EXPECT_EQ(requests[0].name, "psiphon-status");
    EXPECT_FALSE(requests[0].want_reply);
    EXPECT_EQ(string_of(requests[0].data), "{\"a\":\"b\"}");
}

TEST_F(LibsshExtensions, GlobalRequestInNonblockingModeIsSentOnce) {
    connect();
    ssh_set_blocking(session(), 0);
    Buffer reply(ssh_buffer_new());
    int rc, again = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((rc = ssh_send_global_request(session(), "slow", "x", 1, 1, reply.get())) == SSH_AGAIN &&
           std::chrono::steady_clock::now() < deadline) {
        ++again;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(rc, SSH_OK) << ssh_get_error(session());
    EXPECT_GT(again, 0);
    EXPECT_EQ(string_of(bytes_of(reply.get())), "slow reply");
    EXPECT_EQ(server_->global_requests().size(), 1u);
    ssh_set_blocking(session(), 1);
}

TEST_F(LibsshExtensions, GlobalRequestChecksItsArguments) {
    connect();
    EXPECT_EQ(ssh_send_global_request(nullptr, "x", nullptr, 0, 1, nullptr), SSH_ERROR);
    EXPECT_EQ(ssh_send_global_request(session(), nullptr, nullptr, 0, 1, nullptr), SSH_ERROR);
    EXPECT_EQ(ssh_send_global_request(session(), "x", nullptr, 1, 1, nullptr), SSH_ERROR);
    EXPECT_TRUE(server_->global_requests().empty());
    // The session is still fine.
    EXPECT_EQ(ssh_send_global_request(session(), "keepalive@openssh.com", nullptr, 0, 1, nullptr), SSH_OK);
}

TEST_F(LibsshExtensions, CustomChannelOpensAndCarriesData) {
    connect();
    const Channel channel(ssh_channel_new(session()));
    ASSERT_NE(channel, nullptr);
    ASSERT_EQ(ssh_channel_open_custom(channel.get(), "tun@psiphon.ca", nullptr, 0), SSH_OK) << ssh_get_error(session());
    EXPECT_TRUE(ssh_channel_is_open(channel.get()));

    const auto opens = server_->channel_opens();
    ASSERT_EQ(opens.size(), 1u);
    EXPECT_EQ(opens[0].type, "tun@psiphon.ca");
    EXPECT_TRUE(opens[0].data.empty());  // nothing after the standard fields
    EXPECT_GT(opens[0].window, 0u);
    EXPECT_GT(opens[0].max_packet, 0u);

    // Two packet-tunnel frames (u16 length + packet) in one write.
    const Bytes frames = {0x00, 0x04, 0x45, 0x00, 0x00, 0x04, 0x00, 0x02, 0x60, 0x00};
    ASSERT_EQ(ssh_channel_write(channel.get(), frames.data(), uint32_t(frames.size())), int(frames.size()))
        << ssh_get_error(session());
    Bytes received;
    while (received.size() < frames.size()) {
        uint8_t buffer[64];
        const int n = ssh_channel_read_timeout(channel.get(), buffer, sizeof buffer, 0, 5000);
        ASSERT_GT(n, 0) << ssh_get_error(session());
        received.insert(received.end(), buffer, buffer + n);
    }
    EXPECT_EQ(received, answer_to(frames));
    EXPECT_EQ(server_->channel_data(), frames);

    EXPECT_EQ(ssh_channel_close(channel.get()), SSH_OK);
}

TEST_F(LibsshExtensions, RejectedCustomChannelFailsCleanly) {
    connect();
    Channel channel(ssh_channel_new(session()));
    ASSERT_NE(channel, nullptr);
    EXPECT_EQ(ssh_channel_open_custom(channel.get(), "bogus@psiphon.ca", "abc", 3), SSH_ERROR);
    EXPECT_EQ(ssh_get_error_code(session()), SSH_REQUEST_DENIED);
    EXPECT_NE(std::string(ssh_get_error(session())).find("Prohibited"), std::string::npos) << ssh_get_error(session());
    EXPECT_FALSE(ssh_channel_is_open(channel.get()));
    channel.reset();

    const auto opens = server_->channel_opens();
    ASSERT_EQ(opens.size(), 1u);
    EXPECT_EQ(opens[0].type, "bogus@psiphon.ca");
    EXPECT_EQ(string_of(opens[0].data), "abc");

    // The session still works: a channel of an accepted type opens.
    channel.reset(ssh_channel_new(session()));
    EXPECT_EQ(ssh_channel_open_custom(channel.get(), "tun@psiphon.ca", nullptr, 0), SSH_OK) << ssh_get_error(session());
    ssh_channel_close(channel.get());
    channel.reset();
    EXPECT_EQ(ssh_channel_open_custom(nullptr, "tun@psiphon.ca", nullptr, 0), SSH_ERROR);
}

TEST_F(LibsshExtensions, CustomChannelDataIsSentAsIs) {
    connect();
    // direct-tcpip through the generic function must put on the wire what ssh_channel_open_forward does.
    const Channel standard(ssh_channel_new(session()));
    ASSERT_EQ(ssh_channel_open_forward(standard.get(), "example.org", 443, "0.0.0.0", 0), SSH_OK)
        << ssh_get_error(session());
    const Bytes data = Writer().string("example.org").u32(443).string("0.0.0.0").u32(0).out;
    const Channel custom(ssh_channel_new(session()));
    ASSERT_EQ(ssh_channel_open_custom(custom.get(), "direct-tcpip", data.data(), data.size()), SSH_OK)
        << ssh_get_error(session());

    const auto opens = server_->channel_opens();
    ASSERT_EQ(opens.size(), 2u);
    EXPECT_EQ(opens[0].type, "direct-tcpip");
    EXPECT_EQ(opens[1].type, "direct-tcpip");
    EXPECT_EQ(opens[0].data, data);
    EXPECT_EQ(opens[1].data, data);
    EXPECT_EQ(opens[1].window, opens[0].window);
    EXPECT_EQ(opens[1].max_packet, opens[0].max_packet);
}

}  // namespace
