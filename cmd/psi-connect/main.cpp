// psi-connect: connects to one of the Psiphon servers it is given (over the protocols of
// connect/protocols.hpp, SSH through the patched libssh), keeps the tunnel up, and serves
// SOCKS5 and HTTP proxies on loopback. Notices on stdout as JSON lines in Psiphon's format;
// people's messages on stderr.
#include "connect/connect_run.hpp"
#include "connect/protocols.hpp"
#include "core/cli.hpp"

using namespace psi;

int main(int argc, char** argv) {
    CommonOptions common;
    connect::ConnectOptions options;
    CLI::App app{"psi-connect: a Psiphon tunnel (" + connect::spoken_protocol_list(" or ") +
                     ") to one of the given servers, with SOCKS5 and HTTP\n"
                 "proxies on loopback. Notices go to stdout as JSON lines; messages to stderr.",
                 "psi-connect"};
    add_common_options(app, common);
    app.add_option("--entries", options.entries, "Server entry lines, FILE or - for stdin (psi-servers pick)")
        ->capture_default_str();
    app.add_option("--socks", options.socks_port, "SOCKS5 port on 127.0.0.1 and [::1] (LocalSocksProxyPort, else 1080; 0: any)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--http", options.http_port, "HTTP proxy port on 127.0.0.1 and [::1] (LocalHttpProxyPort, else 8080; 0: any)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--socks-fd", options.socks_fds, "Serve SOCKS5 on this inherited listening socket (psi up)")
        ->excludes("--socks");
    app.add_option("--http-fd", options.http_fds, "Serve the HTTP proxy on this inherited listening socket (psi up)")
        ->excludes("--http");
    app.add_option("--discovered", options.discovered_file, "Write the servers the handshake hands out to FILE");
    app.add_option("--protocols", options.protocols, "Tunnel protocols to use, in order (LimitTunnelProtocols)")
        ->check(CLI::IsMember(connect::spoken_protocol_names()))
        ->delimiter(',');
    app.add_option("--parallel", options.parallel, "Servers dialled at once")->check(CLI::Range(1, 32))->capture_default_str();
    app.add_option("--dial-timeout", options.dial_timeout, "Seconds for one server to come up")
        ->check(CLI::Range(1, 300))
        ->capture_default_str();
    app.add_option("--establish-timeout", options.establish_timeout,
                   "Seconds to keep trying before giving up (EstablishTunnelTimeoutSeconds, else 300; 0: forever)")
        ->check(CLI::Range(0, 86400));
    app.add_option("--keepalive", options.keepalive, "Seconds between keepalives (default: 60-120 at random)")
        ->check(CLI::Range(1, 3600));
    app.add_flag("!--no-handshake", options.is_handshake, "A generic SSH server: no Psiphon handshake");
    app.add_option("--identity", options.identity_file, "Public-key authentication with this private key (generic SSH)")
        ->check(CLI::ExistingFile);
    app.add_option("--tun", options.tun_name,
                   "Carry this TUN's packets over Psiphon's packet tunnel (psi-tun up makes it); the proxies stay");
    app.footer("Examples:\n  psi-servers pick | psi-connect --entries -\n"
               "  psi-connect --entries servers.txt --socks 1080 --protocols OSSH\n"
               "  psi-connect --entries my-sshd.txt --no-handshake --identity ~/.ssh/id_ed25519\n"
               "  psi-servers pick | psi-connect --entries - --tun PsiphonTUN\n"
               "Exit status: 0 stopped by a signal, 1 no tunnel could be kept up, 2 usage. See psi-connect(8).");

    return run_program(app, argc, argv, common, [&]() -> int {
        return connect::run_connect(options, load_config_from(common));
    });
}
