#include "connect/dial.hpp"

#include <algorithm>
#include <mutex>

#include "connect/dial_error.hpp"
#include "connect/protocols.hpp"
#include "connect/ssh_client_version.hpp"
#include "core/atomic_file.hpp"
#include "core/encoding.hpp"
#include "core/error.hpp"

namespace psi::connect {
namespace {

using Clock = std::chrono::steady_clock;

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
        const std::string cpu = read_file_if_readable("/proc/cpuinfo").value_or("");
        for (std::size_t at = cpu.find("aes"); at != std::string::npos; at = cpu.find("aes", at + 1)) {
            const bool starts = at > 0 && (cpu[at - 1] == ' ' || cpu[at - 1] == '\t');
            const bool ends = at + 3 >= cpu.size() || cpu[at + 3] == ' ' || cpu[at + 3] == '\n';
            if (starts && ends) return true;
        }
        return false;
    }();
    return has_aes ? "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes256-ctr"
                   : "chacha20-poly1305@openssh.com,aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr";
}

}  // namespace

std::string Candidate::label() const {
    const std::string ip = entry.ip_address();
    const std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
    return protocol + " " + host + ":" + std::to_string(entry.dial_port(protocol).value_or(0));
}

Tunnel::Tunnel(Candidate candidate, SshClientSession session, UniqueFd socket, std::unique_ptr<Transport> transport,
               HandshakeResponse handshake)
    : candidate_(std::move(candidate)),
      socket_(std::move(socket)),
      transport_(std::move(transport)),
      session_(std::move(session)),
      handshake_(std::move(handshake)) {}

Tunnel::~Tunnel() { session_.disconnect(); }

Dial::Dial(Candidate candidate, const DialSettings& settings) : candidate_(std::move(candidate)), settings_(settings) {}

void Dial::cancel() { cancellation_.cancel(); }

std::unique_ptr<Tunnel> Dial::run() {
    struct Forget {
        Cancellation& cancellation;
        ~Forget() { cancellation.forget(); }
    } forget{cancellation_};
    const auto started = Clock::now();
    const auto deadline = started + settings_.timeout;
    const servers::ServerEntry& entry = candidate_.entry;
    const SpokenProtocol* protocol = find_spoken_protocol(candidate_.protocol);
    if (!protocol) throw Error("psi does not speak " + candidate_.protocol);
    UniqueFd libssh_socket;  // closed last, once the transport has stopped, as a Tunnel's is
    std::unique_ptr<Transport> transport = protocol->make_transport();
    libssh_socket = transport->open(TransportRequest{entry, candidate_.protocol, started, deadline, cancellation_});

    SshClientSession session(libssh_socket.get());
    const std::string ip = entry.ip_address();
    const std::string user = entry.string_value("sshUsername");
    const int port = entry.dial_port(candidate_.protocol).value_or(22);
    const bool no = false;
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - Clock::now());
    long seconds = std::max<long>(1, left.count());
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
        cancellation_.throw_if_cancelled();
        const std::string transport_failure = transport->failure();
        if (!transport_failure.empty()) return DialError(servers::FailureClass::handshake, step + ": " + transport_failure);
        const std::string libssh_message = ssh_get_error(session.get());
        return DialError(failure_of_ssh_error(libssh_message), step + ": " + libssh_message);
    };
    if (session.connect() != SSH_OK) throw ssh_failure("SSH");

    const std::optional<std::string> pinned = encoding::base64_decode(entry.string_value("sshHostKey"));
    if (!pinned || server_host_key(session.get()) != *pinned)
        throw DialError(servers::FailureClass::host_key,
                        "the server's host key does not match the entry's sshHostKey (refused)");

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
    if (auth != SSH_AUTH_SUCCESS) throw DialError(servers::FailureClass::auth, "the server refused the credentials");

    HandshakeResponse handshake;
    if (settings_.is_handshake) {
        const std::string request = handshake_request(settings_.identity, report(*transport),
                                                      entry.string_value("webServerSecret"), settings_.session_id);
        const SshBuffer reply(ssh_buffer_new());
        if (!reply) throw Error("out of memory for the handshake");
        if (ssh_send_global_request(session.get(), "psiphon-handshake", request.data(), request.size(), 1,
                                    reply.get()) != SSH_OK) {
            if (ssh_get_error_code(session.get()) == SSH_REQUEST_DENIED)
                throw DialError(servers::FailureClass::handshake, "the server refused the handshake");
            throw ssh_failure("handshake");
        }
        try {
            handshake = parse_handshake_response(std::string_view(
                static_cast<const char*>(ssh_buffer_get(reply.get())), ssh_buffer_get_len(reply.get())));
        } catch (const Error& error) {
            throw DialError(servers::FailureClass::handshake, error.what());
        }
    }
    cancellation_.throw_if_cancelled();
    return std::make_unique<Tunnel>(std::move(candidate_), std::move(session), std::move(libssh_socket),
                                    std::move(transport), std::move(handshake));
}

DialReport Dial::report(const Transport& transport) const {
    DialReport report;
    report.relay_protocol = candidate_.protocol;
    report.ssh_client_version = ssh_client_version_;
    report.dial_port = candidate_.entry.dial_port(candidate_.protocol).value_or(0);
    transport.add_to(report);
    report.candidate_number = candidate_.number;
    report.candidate_count = candidate_.count;
    report.established_tunnels_count = settings_.established_tunnels_count;
    report.server_entry_count = settings_.server_entry_count;
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
