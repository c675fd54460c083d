#include "engine/tcp_fast_path.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/log.hpp"
#include "engine/tcp_fast_path_abi.h"
#include "packet/wire.hpp"

// The program as clang built it, linked in by the Makefile (tcp_fast_path_object.cpp).
extern const unsigned char psi_tcp_fast_path_object[];
extern const std::size_t psi_tcp_fast_path_object_size;

namespace psi::engine {

using packet::Endpoint;
using packet::IpVersion;

namespace {

// From Linux 6.6's uapi, newer than the headers Debian 12 builds against.
constexpr int bpf_tcx_egress = 47;

std::string last_libbpf_message;

int keep_libbpf_message(libbpf_print_level level, const char* format, va_list arguments) {
    if (level == LIBBPF_DEBUG) return 0;
    char line[512];
    std::vsnprintf(line, sizeof line, format, arguments);
    last_libbpf_message = line;
    while (!last_libbpf_message.empty() && last_libbpf_message.back() == '\n') last_libbpf_message.pop_back();
    return 0;
}

// "what: reason (libbpf's last words)"; `error` is an errno value, or its negative.
std::string failure(const std::string& what, int error) {
    std::string text = what + ": " + std::strerror(error > 0 ? error : -error);
    if (!last_libbpf_message.empty()) text += " (" + last_libbpf_message + ")";
    return text;
}

psi_endpoints endpoints_of(const Endpoint& source, const Endpoint& destination) {
    psi_endpoints entry{};
    entry.family = source.address.version == IpVersion::v4 ? 4 : 6;
    const std::size_t size = packet::wire::address_size(source.address.version);
    std::memcpy(entry.source, source.address.bytes.data(), size);
    std::memcpy(entry.destination, destination.address.bytes.data(), size);
    entry.source_port = htons(source.port);
    entry.destination_port = htons(destination.port);
    return entry;
}

}  // namespace

std::unique_ptr<TcpFastPath> TcpFastPath::load(std::uint32_t network_offset, std::string& why) {
    libbpf_set_print(keep_libbpf_message);
    last_libbpf_message.clear();
    bpf_object* object = bpf_object__open_mem(psi_tcp_fast_path_object, psi_tcp_fast_path_object_size, nullptr);
    if (!object) {
        why = failure("cannot read the program", errno);
        return nullptr;
    }
    bpf_map* constants = bpf_object__find_map_by_name(object, ".rodata");
    int error = constants ? bpf_map__set_initial_value(constants, &network_offset, sizeof network_offset) : -ENOENT;
    if (error == 0) error = bpf_object__load(object);
    if (error != 0) {
        bpf_object__close(object);
        why = failure("the kernel refused the program", error);
        return nullptr;
    }
    return std::unique_ptr<TcpFastPath>(new TcpFastPath(object));
}

std::unique_ptr<TcpFastPath> TcpFastPath::attach(const std::string& tun_name, std::string& why) {
    const unsigned index = ::if_nametoindex(tun_name.c_str());
    if (index == 0) {
        why = failure("no " + tun_name, errno);
        return nullptr;
    }
    std::unique_ptr<TcpFastPath> fast_path = load(0, why);
    if (!fast_path) return nullptr;
    fast_path->link_ =
        bpf_link_create(fast_path->program_, static_cast<int>(index), static_cast<bpf_attach_type>(bpf_tcx_egress), nullptr);
    if (fast_path->link_ < 0) {
        why = failure("cannot attach to " + tun_name + "'s egress", fast_path->link_);
        return nullptr;
    }
    return fast_path;
}

TcpFastPath::TcpFastPath(bpf_object* object)
    : object_(object),
      program_(bpf_program__fd(bpf_object__find_program_by_name(object, "tcp_fast_path"))),
      rewrites_(bpf_map__fd(bpf_object__find_map_by_name(object, "rewrites"))),
      counter_(bpf_map__fd(bpf_object__find_map_by_name(object, "rewritten"))) {}

TcpFastPath::~TcpFastPath() {
    if (link_ >= 0) ::close(link_);
    bpf_object__close(object_);
}

bool TcpFastPath::add(const Flow& flow, const Flow& nat_leg) {
    const psi_endpoints application = endpoints_of(flow.application, flow.destination);
    const psi_endpoints into_leg = endpoints_of(nat_leg.application, nat_leg.destination);
    const psi_endpoints listener_side = endpoints_of(nat_leg.destination, nat_leg.application);
    const psi_endpoints answer = endpoints_of(flow.destination, flow.application);
    if (bpf_map_update_elem(rewrites_, &listener_side, &answer, BPF_ANY) != 0) return false;
    if (bpf_map_update_elem(rewrites_, &application, &into_leg, BPF_ANY) != 0) {
        bpf_map_delete_elem(rewrites_, &listener_side);
        return false;
    }
    return true;
}

void TcpFastPath::remove(const Flow& flow, const Flow& nat_leg) {
    const psi_endpoints application = endpoints_of(flow.application, flow.destination);
    const psi_endpoints listener_side = endpoints_of(nat_leg.destination, nat_leg.application);
    bpf_map_delete_elem(rewrites_, &application);
    bpf_map_delete_elem(rewrites_, &listener_side);
}

std::uint64_t TcpFastPath::packets() const {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return 0;
    std::vector<std::uint64_t> per_cpu(static_cast<std::size_t>(cpus));
    const std::uint32_t zero = 0;
    if (bpf_map_lookup_elem(counter_, &zero, per_cpu.data()) != 0) return 0;
    std::uint64_t total = 0;
    for (const std::uint64_t count : per_cpu) total += count;
    return total;
}

}  // namespace psi::engine
