// The engine's kernel fast path for established TCP flows (tcp_fast_path.bpf.c): a tc program on
// the TUN's egress that NATs their segments exactly as TcpNat would and puts them back into the
// TUN's ingress, so bulk data is neither read nor written by the engine. Attached through a tcx
// link, which the kernel detaches when the engine's descriptor closes, also when it crashes: the
// engine's table and the kernel's can never outlive each other.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/nat_table.hpp"

struct bpf_object;

namespace psi::engine {

class TcpFastPath {
public:
    // Loads the program and attaches it to `tun_name`'s egress: needs CAP_BPF and CAP_NET_ADMIN,
    // so the engine does it before it drops them. nullptr, with the reason in `why`, where this
    // kernel cannot (tcx links came with Linux 6.6); the engine then NATs every segment itself.
    static std::unique_ptr<TcpFastPath> attach(const std::string& tun_name, std::string& why);
    // The program loaded, not attached; `network_offset` is where its packets' IP header starts
    // (0 on the TUN). For the unit tests, which run it on packets of their own.
    static std::unique_ptr<TcpFastPath> load(std::uint32_t network_offset, std::string& why);
    ~TcpFastPath();
    TcpFastPath(const TcpFastPath&) = delete;
    TcpFastPath& operator=(const TcpFastPath&) = delete;

    // The flow's two rewrites: the application's segments into `nat_leg` (F:port -> listener),
    // and the listener's back. False when the table refuses them (full): the engine keeps NATing
    // that flow.
    bool add(const Flow& flow, const Flow& nat_leg);
    void remove(const Flow& flow, const Flow& nat_leg);
    // Segments the kernel has NATed since the attachment.
    std::uint64_t packets() const;
    int program() const { return program_; }

private:
    explicit TcpFastPath(bpf_object* object);

    bpf_object* object_;
    int program_, rewrites_, counter_;
    int link_ = -1;
};

}  // namespace psi::engine
