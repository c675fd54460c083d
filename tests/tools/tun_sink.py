#!/usr/bin/python3
"""Tunnel stand-in for the psi test lab: attaches to an existing TUN device that the
calling user owns (no capability needed) and prints one line per packet that the kernel
routes into it: "<proto> <destination> <port>" (port 0 for protocols without ports).

    tun_sink.py DEVICE [--fd N]

With --fd, the /dev/net/tun file descriptor N was opened by a privileged parent (as a
supervisor hands it over where /dev/net/tun is not world-accessible); the attach itself,
TUNSETIFF on the persistent device, still needs no capability.
"""

import fcntl
import ipaddress
import os
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
PROTOCOLS = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}


def describe(packet):
    version = packet[0] >> 4
    if version == 4 and len(packet) >= 20:
        header_length = (packet[0] & 0x0F) * 4
        protocol, destination = packet[9], ipaddress.IPv4Address(packet[16:20])
        transport = packet[header_length:]
    elif version == 6 and len(packet) >= 40:
        protocol, destination = packet[6], ipaddress.IPv6Address(packet[24:40])
        transport = packet[40:]
    else:
        return "other - 0"
    port = struct.unpack("!H", transport[2:4])[0] if protocol in (6, 17) and len(transport) >= 4 else 0
    return "%s %s %d" % (PROTOCOLS.get(protocol, str(protocol)), destination, port)


def main(device, inherited_fd=None):
    tun = inherited_fd if inherited_fd is not None else os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", device.encode(), IFF_TUN | IFF_NO_PI))
    print("attached", flush=True)
    while True:
        print(describe(os.read(tun, 65536)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[3]) if len(sys.argv) == 4 and sys.argv[2] == "--fd" else None)
