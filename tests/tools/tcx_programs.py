#!/usr/bin/python3
"""The BPF programs attached to one network device's tcx hooks (Linux 6.6), as the kernel
lists them for the network namespace this runs in: one line "ingress|egress PROGRAM_ID" per
program, none if nothing is attached. Needs CAP_NET_ADMIN.

    tcx_programs.py DEVICE

bpftool before 7.3 lists tcx programs only host-wide, not per device; this asks the kernel
itself (BPF_PROG_QUERY on the device's index).
"""

import argparse
import ctypes
import os
import platform
import socket
import struct
import sys

BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}
BPF_PROG_QUERY = 16
HOOKS = (("ingress", 46), ("egress", 47))  # BPF_TCX_INGRESS, BPF_TCX_EGRESS
MOST_PROGRAMS = 64

libc = ctypes.CDLL(None, use_errno=True)


def attached(ifindex, attach_type):
    ids = (ctypes.c_uint32 * MOST_PROGRAMS)()
    # union bpf_attr's query: target_ifindex, attach_type, query_flags, attach_flags,
    # prog_ids, prog_cnt, then prog_attach_flags, link_ids, link_attach_flags, revision.
    attr = ctypes.create_string_buffer(struct.pack("=IIIIQI4xQQQQ", ifindex, attach_type, 0, 0,
                                                   ctypes.addressof(ids), MOST_PROGRAMS, 0, 0, 0, 0))
    if libc.syscall(BPF_SYSCALL[platform.machine()], BPF_PROG_QUERY, attr, len(attr.raw)) != 0:
        error = ctypes.get_errno()
        sys.exit(f"tcx_programs.py: cannot query the tcx hook: {os.strerror(error)}")
    count = struct.unpack_from("=I", attr.raw, 24)[0]
    return list(ids[:count])


def main():
    parser = argparse.ArgumentParser(description="The BPF programs on a device's tcx hooks.")
    parser.add_argument("device")
    device = parser.parse_args().device
    try:
        ifindex = socket.if_nametoindex(device)
    except OSError:
        sys.exit(f"tcx_programs.py: no device {device}")
    for name, attach_type in HOOKS:
        for program_id in attached(ifindex, attach_type):
            print(name, program_id)


if __name__ == "__main__":
    main()
