// The kernel half of psi-tun's TCP NAT (docs/packet-engine.md §3.2 step 9): a tc program on PsiphonTUN's egress
// that rewrites the segments of established flows as the engine would, and hands them straight
// back to the TUN's ingress, so bulk data never makes the trip through the engine's read and
// write. The engine owns the table: it adds a flow's two rewrites once the flow is accepted and
// removes them when it forgets the flow. SYN, FIN and RST segments, and whatever the table does not
// hold, go on to the TUN and the engine as before. Built with clang -target bpf; loaded by tcp_fast_path.cpp.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "engine/tcp_fast_path_abi.h"

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(map_flags, BPF_F_NO_PREALLOC);  // memory as flows come (preallocated: 18 MB of kernel memory)
    __uint(max_entries, PSI_FAST_PATH_MAX_REWRITES);
    __type(key, struct psi_endpoints);
    __type(value, struct psi_endpoints);
} rewrites SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} rewritten SEC(".maps");

// Where the IP header starts: 0 on the TUN, which has no link-layer header; the unit tests set 14
// (BPF_PROG_TEST_RUN hands a tc program an Ethernet frame).
const volatile __u32 network_offset = 0;

// The IPv4 pseudo-header and header checksums for one changed address.
static __always_inline int replace_ipv4_address(struct __sk_buff* skb, __u32 tcp_check, __u32 offset, __be32 from,
                                                __be32 to) {
    if (bpf_l4_csum_replace(skb, tcp_check, from, to, BPF_F_PSEUDO_HDR | sizeof to)) return -1;
    if (bpf_l3_csum_replace(skb, network_offset + offsetof(struct iphdr, check), from, to, sizeof to)) return -1;
    return bpf_skb_store_bytes(skb, network_offset + offset, &to, sizeof to, 0);
}

SEC("tc")
int tcp_fast_path(struct __sk_buff* skb) {
    struct psi_endpoints key = {};
    __u32 tcp_offset;
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        struct iphdr ip;
        if (bpf_skb_load_bytes(skb, network_offset, &ip, sizeof ip)) return TC_ACT_UNSPEC;
        if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_TCP || (ip.frag_off & bpf_htons(0x3fff)))
            return TC_ACT_UNSPEC;
        tcp_offset = network_offset + ip.ihl * 4;
        key.family = 4;
        __builtin_memcpy(key.source, &ip.saddr, 4);
        __builtin_memcpy(key.destination, &ip.daddr, 4);
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr ip;
        if (bpf_skb_load_bytes(skb, network_offset, &ip, sizeof ip)) return TC_ACT_UNSPEC;
        if (ip.version != 6 || ip.nexthdr != IPPROTO_TCP) return TC_ACT_UNSPEC;  // extension headers: the engine
        tcp_offset = network_offset + sizeof ip;
        key.family = 6;
        __builtin_memcpy(key.source, &ip.saddr, 16);
        __builtin_memcpy(key.destination, &ip.daddr, 16);
    } else {
        return TC_ACT_UNSPEC;
    }

    struct tcphdr tcp;
    if (bpf_skb_load_bytes(skb, tcp_offset, &tcp, sizeof tcp)) return TC_ACT_UNSPEC;
    // A flow's beginning and end stay the engine's: it holds SYNs, and whatever FIN or reset a
    // socket sends while the engine is gone reaches no application (it gets a reset later).
    if (tcp.syn || tcp.fin || tcp.rst) return TC_ACT_UNSPEC;
    key.source_port = tcp.source;
    key.destination_port = tcp.dest;
    const struct psi_endpoints* to = bpf_map_lookup_elem(&rewrites, &key);
    if (!to || to->family != key.family) return TC_ACT_UNSPEC;

    // Incremental checksums, as the engine does (docs/packet-engine.md §3.4); the helpers know a partial one.
    const __u32 tcp_check = tcp_offset + offsetof(struct tcphdr, check);
    if (key.family == 4) {
        __be32 from_address, to_address;
        __builtin_memcpy(&from_address, key.source, 4);
        __builtin_memcpy(&to_address, to->source, 4);
        if (replace_ipv4_address(skb, tcp_check, offsetof(struct iphdr, saddr), from_address, to_address))
            return TC_ACT_SHOT;
        __builtin_memcpy(&from_address, key.destination, 4);
        __builtin_memcpy(&to_address, to->destination, 4);
        if (replace_ipv4_address(skb, tcp_check, offsetof(struct iphdr, daddr), from_address, to_address))
            return TC_ACT_SHOT;
    } else {
        // Source and destination sit side by side in the header and in the table: one difference.
        const __s64 difference = bpf_csum_diff((__be32*)key.source, 32, (__be32*)to->source, 32, 0);
        if (difference < 0 || bpf_l4_csum_replace(skb, tcp_check, 0, (__u32)difference, BPF_F_PSEUDO_HDR))
            return TC_ACT_SHOT;
        if (bpf_skb_store_bytes(skb, network_offset + offsetof(struct ipv6hdr, saddr), to->source, 32, 0)) return TC_ACT_SHOT;
    }
    if (bpf_l4_csum_replace(skb, tcp_check, key.source_port, to->source_port, sizeof(__be16)) ||
        bpf_l4_csum_replace(skb, tcp_check, key.destination_port, to->destination_port, sizeof(__be16)))
        return TC_ACT_SHOT;
    const __be16 ports[2] = {to->source_port, to->destination_port};
    if (bpf_skb_store_bytes(skb, tcp_offset, ports, sizeof ports, 0)) return TC_ACT_SHOT;

    const __u32 zero = 0;
    __u64* count = bpf_map_lookup_elem(&rewritten, &zero);
    if (count) *count += 1;
    // Back into the TUN's own ingress, never anywhere else: as if the engine had written it.
    return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

// The kernel asks every program for a license string; this one uses no GPL-only helper.
char LICENSE[] SEC("license") = "Dual MIT/GPL";
