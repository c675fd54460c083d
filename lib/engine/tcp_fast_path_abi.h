/* What psi-tun's engine and its tc program (tcp_fast_path.bpf.c) share: the table's entry. Plain
   C, so that clang -target bpf and g++ read the same layout. */
#ifndef PSI_TUN_TCP_FAST_PATH_ABI_H
#define PSI_TUN_TCP_FAST_PATH_ABI_H

#include <linux/types.h>

/* Two rewrites per flow (the application's segments and the listener's); 2048 connecting flows
   aside, the NAT table's ports bound the flows. */
#define PSI_FAST_PATH_MAX_REWRITES 131072

/* A TCP segment's endpoints, network byte order. IPv4 addresses fill the first 4 bytes of 16, the
   rest zero. Key: the segment as it leaves for the TUN; value: what it becomes. The destination
   follows the source, as in the IPv6 header, so one checksum difference covers both. */
struct psi_endpoints {
    __u8 family; /* 4 or 6 */
    __u8 unused[3];
    __be16 source_port;
    __be16 destination_port;
    __u8 source[16];
    __u8 destination[16];
};

#endif
