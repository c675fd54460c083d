// The benchmarks' traffic tool (docs/packet-engine.md §5): one TCP stream of bulk data up or down, or 64-byte
// request/response round trips, directly or through a SOCKS5 proxy (CONNECT, no authentication),
// so that "SOCKS alone" is measured with the very client that measures the other paths.
//
//   rr server ADDRESS:PORT                          answers every mode, a thread per connection
//   rr up|down ADDRESS:PORT [--socks ADDRESS:PORT] [--seconds N]
//        prints "Gbit/s bytes seconds"; counted at the receiver, timed until it has it all
//   rr up-timed ADDRESS:PORT [--socks ADDRESS:PORT] [--seconds N]
//        up without a half-close, which Psiphon's server does not carry (it ends a port forward
//        at the client's end of stream): the server counts for N seconds from the header, then
//        answers with its count and time, and the client stops sending
//   rr rr ADDRESS:PORT [--socks ADDRESS:PORT] [--iterations N] [--size BYTES]
//        prints "p50-µs p99-µs" of the round trips (after 100 unrecorded ones)
//   rr connects ADDRESS:PORT [--socks ADDRESS:PORT] [--iterations N]
//        a new connection each time, and its first 64-byte round trip: prints "p50-µs p99-µs"
//
// Each connection starts with a 5-byte header: the mode ('u', 'v', 'd' or 'e') and a big-endian
// parameter (milliseconds to count for 'v', to send for 'd', message size for 'e').
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "proxy/socks5.hpp"
#include "proxy/socks5_client.hpp"

namespace {

using psi::UniqueFd;
namespace proxy = psi::proxy;
using Clock = std::chrono::steady_clock;

constexpr std::size_t buffer_size = 128 * 1024;
constexpr int warm_up_round_trips = 100;

void set_no_delay(int fd) {
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

void write_all(int fd, const void* data, std::size_t size) {
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t written = ::send(fd, bytes, size, MSG_NOSIGNAL);
        if (written < 0) {
            if (errno == EINTR) continue;
            psi::throw_system_error("send", errno);
        }
        bytes += written;
        size -= static_cast<std::size_t>(written);
    }
}

// Exactly `size` bytes; false on an end of stream before the first one.
bool read_exactly(int fd, void* data, std::size_t size) {
    char* bytes = static_cast<char*>(data);
    std::size_t done = 0;
    while (done < size) {
        const ssize_t count = ::recv(fd, bytes + done, size - done, 0);
        if (count < 0) {
            if (errno == EINTR) continue;
            psi::throw_system_error("recv", errno);
        }
        if (count == 0) {
            if (done == 0) return false;
            throw psi::Error("the peer closed in the middle of a message");
        }
        done += static_cast<std::size_t>(count);
    }
    return true;
}

void put_u32(unsigned char* out, std::uint32_t value) {
    for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(value >> (24 - 8 * i));
}
std::uint32_t get_u32(const unsigned char* in) {
    return std::uint32_t{in[0]} << 24 | std::uint32_t{in[1]} << 16 | std::uint32_t{in[2]} << 8 | in[3];
}

// Reads one SOCKS5 message with a parser, byte by byte, so nothing after it is consumed.
template <class Parse>
auto read_message(int fd, Parse parse) {
    std::string bytes;
    for (;;) {
        char byte;
        if (!read_exactly(fd, &byte, 1)) throw psi::Error("the SOCKS5 proxy closed the connection");
        bytes.push_back(byte);
        auto parsed = parse(bytes);
        if (parsed.status == proxy::ParseStatus::complete) return parsed.message;
        if (parsed.status == proxy::ParseStatus::malformed) throw psi::Error("malformed SOCKS5 message from the proxy");
    }
}

UniqueFd connect_to(const proxy::ProxyAddress& address) {
    UniqueFd fd(::socket(address.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.is_open()) psi::throw_system_error("socket", errno);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address.address), address.length) != 0)
        psi::throw_system_error("connect to " + address.text, errno);
    return fd;
}

proxy::SocksAddress socks_address_of(const proxy::ProxyAddress& target) {
    proxy::SocksAddress address;
    char text[INET6_ADDRSTRLEN] = {};
    if (target.address.ss_family == AF_INET6) {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(target.address);
        address.type = proxy::AddressType::ipv6;
        ::inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof text);
        address.port = ntohs(v6.sin6_port);
    } else {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(target.address);
        ::inet_ntop(AF_INET, &v4.sin_addr, text, sizeof text);
        address.port = ntohs(v4.sin_port);
    }
    address.host = text;
    return address;
}

// A connection to the target, through the proxy when there is one, with the mode header sent.
UniqueFd open_stream(const proxy::ProxyAddress& target, const std::string& socks, char mode, std::uint32_t parameter) {
    UniqueFd fd;
    if (socks.empty()) {
        fd = connect_to(target);
    } else {
        fd = connect_to(proxy::parse_proxy_address(socks));
        const std::string greeting = proxy::no_authentication_greeting();
        write_all(fd.get(), greeting.data(), greeting.size());
        read_message(fd.get(), proxy::parse_method_choice);
        const std::string request = proxy::encode_request(proxy::SocksCommand::connect, socks_address_of(target));
        write_all(fd.get(), request.data(), request.size());
        const auto reply = read_message(fd.get(), proxy::parse_reply);
        if (reply.reply != proxy::SocksReply::succeeded)
            throw psi::Error(std::string("the SOCKS5 proxy refused: ") + proxy::reply_name(reply.reply));
    }
    // Round trips want every message on the wire at once; bulk data is sent as iperf3 sends it.
    if (mode == 'e') set_no_delay(fd.get());
    unsigned char header[5] = {static_cast<unsigned char>(mode)};
    put_u32(header + 1, parameter);
    write_all(fd.get(), header, sizeof header);
    return fd;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

void print_throughput(std::uint64_t bytes, double seconds) {
    std::printf("%.3f %llu %.3f\n", static_cast<double>(bytes) * 8 / seconds / 1e9,
                static_cast<unsigned long long>(bytes), seconds);
}

// Sends for `seconds`, half-closes, and waits for the server's count of what arrived.
void run_up(const proxy::ProxyAddress& target, const std::string& socks, double seconds) {
    UniqueFd fd = open_stream(target, socks, 'u', 0);
    std::vector<char> buffer(buffer_size, 'u');
    const Clock::time_point start = Clock::now();
    const Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    while (Clock::now() < end) write_all(fd.get(), buffer.data(), buffer.size());
    ::shutdown(fd.get(), SHUT_WR);
    unsigned char count[8];
    if (!read_exactly(fd.get(), count, sizeof count)) throw psi::Error("the server did not report what it received");
    const double elapsed = seconds_since(start);
    const std::uint64_t received = std::uint64_t{get_u32(count)} << 32 | get_u32(count + 4);
    print_throughput(received, elapsed);
}

// Sends until the server, which counts for `seconds`, answers with what it received and when.
void run_up_timed(const proxy::ProxyAddress& target, const std::string& socks, double seconds) {
    UniqueFd fd = open_stream(target, socks, 'v', static_cast<std::uint32_t>(seconds * 1000));
    std::vector<char> buffer(buffer_size, 'v');
    for (;;) {
        pollfd ready{fd.get(), POLLIN | POLLOUT, 0};
        if (::poll(&ready, 1, -1) < 0) {
            if (errno == EINTR) continue;
            psi::throw_system_error("poll", errno);
        }
        if (ready.revents & (POLLIN | POLLHUP | POLLERR)) break;
        const ssize_t sent = ::send(fd.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0 && errno != EAGAIN && errno != EINTR) psi::throw_system_error("send", errno);
    }
    unsigned char report[16];
    if (!read_exactly(fd.get(), report, sizeof report)) throw psi::Error("the server did not report what it received");
    const std::uint64_t received = std::uint64_t{get_u32(report)} << 32 | get_u32(report + 4);
    const std::uint64_t micros = std::uint64_t{get_u32(report + 8)} << 32 | get_u32(report + 12);
    print_throughput(received, static_cast<double>(micros) / 1e6);
}

// Asks the server to send for `seconds`; counts until its end of stream.
void run_down(const proxy::ProxyAddress& target, const std::string& socks, double seconds) {
    const Clock::time_point start = Clock::now();
    UniqueFd fd = open_stream(target, socks, 'd', static_cast<std::uint32_t>(seconds * 1000));
    std::vector<char> buffer(buffer_size);
    std::uint64_t received = 0;
    for (;;) {
        const ssize_t count = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (count < 0) {
            if (errno == EINTR) continue;
            psi::throw_system_error("recv", errno);
        }
        if (count == 0) break;
        received += static_cast<std::uint64_t>(count);
    }
    print_throughput(received, seconds_since(start));
}

void print_quantiles(std::vector<double>& microseconds) {
    std::sort(microseconds.begin(), microseconds.end());
    auto at = [&](double quantile) {
        return microseconds[std::min(microseconds.size() - 1, static_cast<std::size_t>(quantile * microseconds.size()))];
    };
    std::printf("%.1f %.1f\n", at(0.5), at(0.99));
}

// A new flow each time: connect (through the proxy's CONNECT when given), then one round trip;
// the time until the echo is back is what an application waits for its first answer.
void run_connects(const proxy::ProxyAddress& target, const std::string& socks, int iterations, std::uint32_t size) {
    std::vector<char> message(size, 'c');
    std::vector<double> microseconds;
    for (int i = 0; i < iterations; ++i) {
        const Clock::time_point start = Clock::now();
        UniqueFd fd = open_stream(target, socks, 'e', size);
        write_all(fd.get(), message.data(), message.size());
        if (!read_exactly(fd.get(), message.data(), message.size())) throw psi::Error("the server closed early");
        microseconds.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    print_quantiles(microseconds);
}

void run_round_trips(const proxy::ProxyAddress& target, const std::string& socks, int iterations, std::uint32_t size) {
    UniqueFd fd = open_stream(target, socks, 'e', size);
    std::vector<char> message(size, 'r');
    std::vector<double> microseconds;
    microseconds.reserve(static_cast<std::size_t>(iterations));
    for (int i = 0; i < warm_up_round_trips + iterations; ++i) {
        const Clock::time_point start = Clock::now();
        write_all(fd.get(), message.data(), message.size());
        if (!read_exactly(fd.get(), message.data(), message.size())) throw psi::Error("the server closed early");
        if (i >= warm_up_round_trips)
            microseconds.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    }
    print_quantiles(microseconds);
}

void serve(UniqueFd fd) {
    try {
        unsigned char header[5];
        if (!read_exactly(fd.get(), header, sizeof header)) return;
        const std::uint32_t parameter = get_u32(header + 1);
        std::vector<char> buffer(std::max<std::size_t>(buffer_size, parameter));
        if (header[0] == 'u') {
            std::uint64_t received = 0;
            for (;;) {
                const ssize_t count = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
                if (count < 0 && errno == EINTR) continue;
                if (count < 0) psi::throw_system_error("recv", errno);
                if (count == 0) break;
                received += static_cast<std::uint64_t>(count);
            }
            unsigned char count[8];
            put_u32(count, static_cast<std::uint32_t>(received >> 32));
            put_u32(count + 4, static_cast<std::uint32_t>(received));
            write_all(fd.get(), count, sizeof count);
        } else if (header[0] == 'v') {
            const Clock::time_point start = Clock::now();
            const Clock::time_point end = start + std::chrono::milliseconds(parameter);
            std::uint64_t received = 0;
            for (;;) {
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count();
                if (left <= 0) break;
                pollfd readable{fd.get(), POLLIN, 0};
                if (::poll(&readable, 1, static_cast<int>(left)) <= 0) continue;
                const ssize_t count = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
                if (count < 0 && errno == EINTR) continue;
                if (count <= 0) break;
                received += static_cast<std::uint64_t>(count);
            }
            const auto micros = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
            unsigned char report[16];
            put_u32(report, static_cast<std::uint32_t>(received >> 32));
            put_u32(report + 4, static_cast<std::uint32_t>(received));
            put_u32(report + 8, static_cast<std::uint32_t>(micros >> 32));
            put_u32(report + 12, static_cast<std::uint32_t>(micros));
            write_all(fd.get(), report, sizeof report);
            // Drained until the client, which has the report, closes (10 s at most): an end of
            // stream or a close with data unread would end the port forward, and the reset
            // that follows can discard the report before the client has read it.
            const timeval patience{10, 0};
            ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
            while (::recv(fd.get(), buffer.data(), buffer.size(), 0) > 0) {}
        } else if (header[0] == 'd') {
            const Clock::time_point end = Clock::now() + std::chrono::milliseconds(parameter);
            while (Clock::now() < end) write_all(fd.get(), buffer.data(), buffer_size);
        } else if (header[0] == 'e') {
            set_no_delay(fd.get());
            while (read_exactly(fd.get(), buffer.data(), parameter)) write_all(fd.get(), buffer.data(), parameter);
        }
    } catch (const psi::Error& error) {
        std::fprintf(stderr, "rr server: %s\n", error.what());
    }
}

void run_server(const proxy::ProxyAddress& listen) {
    UniqueFd listener(::socket(listen.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener.is_open()) psi::throw_system_error("socket", errno);
    const int on = 1;
    ::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&listen.address), listen.length) != 0)
        psi::throw_system_error("bind " + listen.text, errno);
    if (::listen(listener.get(), 128) != 0) psi::throw_system_error("listen", errno);
    std::printf("listening on %s\n", listen.text.c_str());
    std::fflush(stdout);
    for (;;) {
        UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!fd.is_open()) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            psi::throw_system_error("accept", errno);
        }
        std::thread(serve, std::move(fd)).detach();
    }
}

int usage() {
    std::fprintf(stderr,
                 "usage: rr server ADDRESS:PORT\n"
                 "       rr up|up-timed|down ADDRESS:PORT [--socks ADDRESS:PORT] [--seconds N]\n"
                 "       rr rr ADDRESS:PORT [--socks ADDRESS:PORT] [--iterations N] [--size BYTES]\n"
                 "       rr connects ADDRESS:PORT [--socks ADDRESS:PORT] [--iterations N]\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) return usage();
    const std::string mode = argv[1];
    std::string socks;
    double seconds = 5;
    int iterations = 5000;
    std::uint32_t size = 64;
    for (int i = 3; i < argc; ++i) {
        const std::string option = argv[i];
        if (i + 1 >= argc) return usage();
        const char* value = argv[++i];
        if (option == "--socks") socks = value;
        else if (option == "--seconds") seconds = std::atof(value);
        else if (option == "--iterations") iterations = std::atoi(value);
        else if (option == "--size") size = static_cast<std::uint32_t>(std::atoi(value));
        else return usage();
    }
    if (seconds <= 0 || iterations <= 0 || size == 0 || size > (1u << 20)) return usage();
    try {
        ::signal(SIGPIPE, SIG_IGN);
        const proxy::ProxyAddress address = proxy::parse_proxy_address(argv[2]);
        if (mode == "server") run_server(address);
        else if (mode == "up") run_up(address, socks, seconds);
        else if (mode == "up-timed") run_up_timed(address, socks, seconds);
        else if (mode == "down") run_down(address, socks, seconds);
        else if (mode == "rr") run_round_trips(address, socks, iterations, size);
        else if (mode == "connects") run_connects(address, socks, iterations, size);
        else return usage();
    } catch (const psi::Error& error) {
        std::fprintf(stderr, "rr: %s\n", error.what());
        return 1;
    }
    return 0;
}
