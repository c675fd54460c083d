#include "connect/connect_run.hpp"

#include <signal.h>
#include <unistd.h>

#include "connect/protocols.hpp"
#include "connect/psiphon_api.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/log.hpp"
#include "core/privileges.hpp"
#include "core/signals.hpp"
#include "servers/server_entry.hpp"
#include "tun/tun_device.hpp"

namespace psi::connect {
namespace {

constexpr rlim_t wanted_open_files = 65536;

// Every (entry, protocol) pair to try: protocol by protocol in `protocols`' order (OSSH before
// SSH), and the entries in their order within each.
std::vector<Candidate> candidates_from(const std::string& text, const std::vector<std::string>& protocols) {
    const servers::DecodedList decoded = servers::decode_entry_list(text);
    for (const auto& [reason, count] : decoded.skipped)
        log::warning("skipped " + std::to_string(count) + " entry line(s): " + reason);
    std::vector<Candidate> candidates;
    for (const std::string& protocol : protocols)
        for (const servers::ServerEntry& entry : decoded.entries)
            if (!entry.protocols({protocol}).empty()) candidates.push_back(Candidate{entry, protocol});
    return candidates;
}

// The sockets psi up handed down, or new ones on both loopback addresses.
LoopbackListeners listeners(const std::vector<int>& fds, int port) {
    return fds.empty() ? listen_on_loopback(static_cast<std::uint16_t>(port)) : adopt_loopback_listeners(fds);
}

void resolve_against(ConnectOptions& options, const Config& config) {
    if (options.socks_port < 0) options.socks_port = local_socks_port(config);
    if (options.http_port < 0) options.http_port = local_http_port(config);
    if (options.establish_timeout < 0) options.establish_timeout = config.psiphon.establish_tunnel_timeout_seconds;
    if (options.protocols.empty()) {
        const std::vector<std::string>& limited = config.psiphon.limit_tunnel_protocols;
        for (const std::string& protocol : limited) {
            if (find_spoken_protocol(protocol)) options.protocols.push_back(protocol);
            else log::warning("LimitTunnelProtocols: psi-connect does not speak " + protocol + "; ignored");
        }
        if (!limited.empty() && options.protocols.empty())
            throw Error("LimitTunnelProtocols names no protocol psi-connect speaks (" + spoken_protocol_list(", ") + ")",
                        exit_status::usage);
    }
    if (options.protocols.empty()) options.protocols = spoken_protocol_names();
}

}  // namespace

int run_connect(ConnectOptions options, const Config& config) {
    resolve_against(options, config);
    if (options.is_handshake) client_identity(config);  // a bad identity is a usage error, before anything else

    // Everything root may read is read first; then the tunnel user, with no capability,
    // before any network socket exists.
    const std::string text = options.entries == "-" ? read_all(STDIN_FILENO, "standard input", 64 << 20)
                                                    : read_file(options.entries);
    raise_open_file_limit(wanted_open_files);
    // The TUN too, for good: while a tunnel is redone, packets wait in its queue or are
    // dropped there, and go nowhere else.
    UniqueFd tun;
    if (::geteuid() == 0) {
        const UserIdentity user = lookup_user(config.tunnel_user, config.tunnel_group);
        if (!options.tun_name.empty()) tun = tun::attach_users_tun(options.tun_name, user, tun::TunFraming::plain);
        drop_privileges(user);
    } else if (!options.tun_name.empty()) {
        tun = tun::attach_tun(options.tun_name, UniqueFd(), tun::TunFraming::plain);
    }
    if (::geteuid() == 0) throw Error("psi-connect never runs as root");

    initialize_libssh();
    UniqueFd signal_fd = receive_signals({SIGTERM, SIGINT, SIGHUP});
    TunnelController controller(options, config, candidates_from(text, options.protocols), std::move(tun),
                                listeners(options.socks_fds, options.socks_port),
                                listeners(options.http_fds, options.http_port));
    return controller.run(signal_fd.get());
}

}  // namespace psi::connect
