#include "connect/dial.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/atomic_file.hpp"
#include "core/encoding.hpp"
#include "connect/ssh_client_version.hpp"
#include "core/error.hpp"

namespace psi::connect {
namespace {

using Clock = std::chrono::steady_clock;

int milliseconds_left(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

sockaddr_storage server_address(const std::string& ip, int port, socklen_t& length) {
    sockaddr_storage storage{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<std::uint16_t>(port));
        length = sizeof *v4;
    } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<std::uint16_t>(port));
        length = sizeof *v6;
    } else {
        throw Error("the entry's ipAddress is not an IP address");
    }
    return storage;
}

// The server's host key, as the blob its base64 text stands for.
std::string server_host_key(ssh_session session) {
    ssh_key received = nullptr;
    const int status = ssh_get_server_publickey(session, &received);
    const SshKey key(received);
    if (status != SSH_OK) throw Error("the server sent no host key");
    char* exported = nullptr;
    const int export_status = ssh_pki_export_pubkey_base64(key.get(), &exported);
    const SshString base64(exported);
    if (export_status != SSH_OK) throw Error("the server's host key cannot be read");
    const std::optional<std::string> blob = encoding::base64_decode(base64.get());
    if (!blob) throw Error("the server's host key cannot be read");
    return *blob;
}

// Ciphers in the order Go's SSH (Psiphon's own client) prefers them: AES-GCM first where the CPU
// has AES instructions (several times faster there), ChaCha20-Poly1305 first where it has not.
const char* cipher_preference() {
    static const bool has_aes = [] {
        try {
            const std::string cpu = read_file("/proc/cpuinfo");
            for (std::size_t at = cpu.find("aes"); at != std::string::npos; at = cpu.find("aes", at + 1)) {
                const bool starts = at > 0 && (cpu[at - 1] == ' ' || cpu[at - 1] == '\t');
                const bool ends = at + 3 >= cpu.size() || cpu[at + 3] == ' ' || cpu[at + 3] == '\n';
                if (starts && ends) return true;
            }
        } catch (const Error&) {
        }
        return false;
    }();
    return has_aes ? "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"
                   : "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";
}

std::string random_padding() {
    unsigned char length_bytes[2];
    if (RAND_bytes(length_bytes, sizeof length_bytes) != 1) throw Error("no randomness for the OSSH padding");
    const std::size_t length = ((length_bytes[0] << 8) | length_bytes[1]) % (ssh::obfuscation_max_padding + 1);
    std::string padding(length, '\0');
    if (length && RAND_bytes(reinterpret_cast<unsigned char*>(padding.data()), static_cast<int>(length)) != 1)
        throw Error("no randomness for the OSSH padding");
    return padding;
}

}  // namespace

std::string Candidate::label() const {
    const std::string ip = entry.ip_address();
    const std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
    return protocol + " " + host + ":" + std::to_string(entry.dial_port(protocol).value_or(0));
}

Tunnel::Tunnel(Candidate candidate, SshClientSession session, UniqueFd socket, std::unique_ptr<OsshPump> pump,
               HandshakeResponse handshake)
    : candidate_(std::move(candidate)),
      socket_(std::move(socket)),
      pump_(std::move(pump)),
      session_(std::move(session)),
      handshake_(std::move(handshake)) {}

Tunnel::~Tunnel() { session_.disconnect(); }

Dial::Dial(Candidate candidate, const DialSettings& settings) : candidate_(std::move(candidate)), settings_(settings) {}

void Dial::cancel() {
    std::lock_guard lock(mutex_);
    is_cancelled_ = true;
    for (int fd : watched_) ::shutdown(fd, SHUT_RDWR);
}

void Dial::watch(int fd) {
    std::lock_guard lock(mutex_);
    watched_.push_back(fd);
    if (is_cancelled_) ::shutdown(fd, SHUT_RDWR);
}

void Dial::check_cancelled() {
    std::lock_guard lock(mutex_);
    if (is_cancelled_) throw Error("cancelled");
}

UniqueFd Dial::connect_tcp(Clock::time_point deadline) {
    const std::optional<int> port = candidate_.entry.dial_port(candidate_.protocol);
    if (!port) throw Error("the entry has no " + candidate_.protocol + " port");
    socklen_t length = 0;
    const sockaddr_storage address = server_address(candidate_.entry.ip_address(), *port, length);
    UniqueFd socket(::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!socket.is_open()) throw Error(std::string("socket: ") + std::strerror(errno));
    watch(socket.get());
    const int one = 1;
    ::setsockopt(socket.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Data unacknowledged this long ends the connection: a tunnel whose path died under traffic
    // fails in 30 s, as an idle one does by its keepalive, not after TCP's 15 minutes of retries.
    const unsigned user_timeout_ms = 30000;
    ::setsockopt(socket.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
    if (::connect(socket.get(), reinterpret_cast<const sockaddr*>(&address), length) != 0 && errno != EINPROGRESS)
        throw Error(std::string("TCP: ") + std::strerror(errno));
    pollfd pending{socket.get(), POLLOUT, 0};
    const int ready = ::poll(&pending, 1, milliseconds_left(deadline));
    check_cancelled();
    if (ready == 0) throw Error("TCP: no answer in time");
    int error = 0;
    socklen_t error_length = sizeof error;
    ::getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &error_length);
    if (ready < 0 || error != 0) throw Error(std::string("TCP: ") + std::strerror(ready < 0 ? errno : error));
    return socket;
}

std::unique_ptr<Tunnel> Dial::run() {
    struct Unwatch {
        Dial& dial;
        ~Unwatch() {
            std::lock_guard lock(dial.mutex_);
            dial.watched_.clear();
        }
    } unwatch{*this};
    const auto started = Clock::now();
    const auto deadline = started + settings_.timeout;
    const servers::ServerEntry& entry = candidate_.entry;
    UniqueFd libssh_socket;
    std::unique_ptr<OsshPump> pump;
    UniqueFd tcp = connect_tcp(deadline);
    dial_duration_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
    if (candidate_.protocol == "OSSH") {
        int pair[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
            throw Error(std::string("socketpair: ") + std::strerror(errno));
        libssh_socket.reset(pair[0]);
        UniqueFd pump_side(pair[1]);
        watch(pair[0]);
        ssh::ObfuscationSeed seed;
        if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1) throw Error("no randomness for OSSH");
        auto obfuscator = std::make_unique<ssh::ClientObfuscator>(entry.string_value("sshObfuscatedKey"), seed);
        const std::string padding = random_padding();
        ossh_padding_ = padding.size();
        std::string preamble = obfuscator->preamble(padding);
        pump = std::make_unique<OsshPump>(std::move(tcp), std::move(pump_side), std::move(obfuscator),
                                          std::move(preamble));
    } else {
        libssh_socket = std::move(tcp);
    }
    // The socket stays non-blocking: libssh polls before it reads or writes, and a blocking
    // send of its whole output buffer would stall the proxy's event loop later.
    if (libssh_socket.get() != -1 && candidate_.protocol == "OSSH") {
        const int flags = ::fcntl(libssh_socket.get(), F_GETFL);
        ::fcntl(libssh_socket.get(), F_SETFL, flags | O_NONBLOCK);
    }

    SshClientSession session(libssh_socket.get());
    const std::string ip = entry.ip_address();
    const std::string user = entry.string_value("sshUsername");
    const int port = entry.dial_port(candidate_.protocol).value_or(22);
    const bool no = false;
    long seconds = std::max(1, milliseconds_left(deadline) / 1000);
    ssh_options_set(session.get(), SSH_OPTIONS_PROCESS_CONFIG, &no);
    ssh_options_set(session.get(), SSH_OPTIONS_HOST, ip.c_str());
    ssh_options_set(session.get(), SSH_OPTIONS_PORT, &port);
    ssh_options_set(session.get(), SSH_OPTIONS_USER, user.c_str());
    ssh_options_set(session.get(), SSH_OPTIONS_TIMEOUT, &seconds);
    ssh_options_set(session.get(), SSH_OPTIONS_CIPHERS_C_S, cipher_preference());
    ssh_options_set(session.get(), SSH_OPTIONS_CIPHERS_S_C, cipher_preference());
    ssh_client_version_ = random_ssh_client_version();
    if (ssh_set_client_banner(session.get(), ssh_client_version_.c_str()) != SSH_OK)
        throw Error("libssh refused the SSH client version " + ssh_client_version_);
    const auto ssh_failure = [&](const std::string& step) {
        check_cancelled();
        const std::string pump_failure = pump ? pump->failure() : std::string();
        return Error(step + ": " + (pump_failure.empty() ? ssh_get_error(session.get()) : pump_failure));
    };
    if (session.connect() != SSH_OK) throw ssh_failure("SSH");

    const std::optional<std::string> pinned = encoding::base64_decode(entry.string_value("sshHostKey"));
    if (!pinned || server_host_key(session.get()) != *pinned)
        throw Error("the server's host key does not match the entry's sshHostKey (refused)");

    int auth = SSH_AUTH_ERROR;
    if (!settings_.identity_file.empty()) {
        ssh_key imported = nullptr;
        const int status =
            ssh_pki_import_privkey_file(settings_.identity_file.c_str(), nullptr, nullptr, nullptr, &imported);
        const SshKey key(imported);
        if (status != SSH_OK) throw Error("cannot read the identity file " + settings_.identity_file);
        auth = ssh_userauth_publickey(session.get(), nullptr, key.get());
    } else {
        const std::string password = password_payload(settings_.session_id, entry.string_value("sshPassword"),
                                                      settings_.identity.sponsor_id);
        auth = ssh_userauth_password(session.get(), nullptr, password.c_str());
    }
    if (auth == SSH_AUTH_ERROR) throw ssh_failure("SSH authentication");
    if (auth != SSH_AUTH_SUCCESS) throw Error("the server refused the credentials");

    HandshakeResponse handshake;
    if (settings_.is_handshake) {
        const std::string request = handshake_request(settings_.identity, report(),
                                                      entry.string_value("webServerSecret"), settings_.session_id);
        const SshBuffer reply(ssh_buffer_new());
        if (!reply) throw Error("out of memory for the handshake");
        if (ssh_send_global_request(session.get(), "psiphon-handshake", request.data(), request.size(), 1,
                                    reply.get()) != SSH_OK) {
            if (ssh_get_error_code(session.get()) == SSH_REQUEST_DENIED) throw Error("the server refused the handshake");
            throw ssh_failure("handshake");
        }
        handshake = parse_handshake_response(std::string_view(static_cast<const char*>(ssh_buffer_get(reply.get())),
                                                              ssh_buffer_get_len(reply.get())));
    }
    check_cancelled();
    return std::make_unique<Tunnel>(std::move(candidate_), std::move(session), std::move(libssh_socket),
                                    std::move(pump), std::move(handshake));
}

DialReport Dial::report() const {
    DialReport report;
    report.relay_protocol = candidate_.protocol;
    report.ssh_client_version = ssh_client_version_;
    report.dial_port = candidate_.entry.dial_port(candidate_.protocol).value_or(0);
    report.dial_duration_ms = dial_duration_ms_;
    report.candidate_number = candidate_.number;
    report.candidate_count = candidate_.count;
    report.established_tunnels_count = settings_.established_tunnels_count;
    report.server_entry_count = settings_.server_entry_count;
    report.upstream_ossh_padding = ossh_padding_;
    report.server_entry_region = candidate_.entry.region();
    report.server_entry_source = candidate_.entry.string_value("localSource");
    report.server_entry_timestamp = truncate_timestamp_to_hour(candidate_.entry.string_value("localTimestamp"));
    return report;
}

void initialize_libssh() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (ssh_init() != SSH_OK) throw Error("libssh cannot start");
    });
}

}  // namespace psi::connect
