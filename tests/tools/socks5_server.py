#!/usr/bin/python3
"""A minimal SOCKS5 proxy for the psi test lab (RFC 1928: no authentication, IPv4, IPv6 and
domain names; CONNECT and UDP ASSOCIATE; one thread per connection, good for thousands).

    socks5_server.py --bind ADDR --port P [--no-udp] [--refuse-port P ...]
                     [--delay-connect SECONDS]

    --no-udp               answer UDP ASSOCIATE with 0x07 (command not supported); a
                           proxy without UDP, like OpenSSH's ssh -D (which, though, closes
                           the connection without a reply)
    --refuse-port P        answer CONNECT to port P with 0x05 without trying (repeatable)
    --delay-connect S      wait S seconds before connecting, to hold the client's SYN

Replies to CONNECT (BND.ADDR/BND.PORT are zeros):
    0x00  connected
    0x03  network unreachable      (ENETUNREACH)
    0x04  host unreachable         (EHOSTUNREACH)
    0x05  connection refused       (ECONNREFUSED, --refuse-port, and any other failure,
                                    name resolution included)
    0x06  TTL expired              (no answer within 10 s: the nearest RFC 1928 code to a
                                    timeout)
    0x07  command not supported    (BIND; UDP ASSOCIATE with --no-udp)

UDP ASSOCIATE: a UDP socket is bound to the control connection's local address, port 0, and
named in the reply. Datagrams to it are taken only from the control connection's client IP,
and from the port named in the request (when the request names zeros, the first datagram
fixes the port); FRAG must be 0. They go to DST.ADDR:DST.PORT from a separate socket per
address family, and whatever comes back to those sockets, from any source, is sent to the
client with a header naming that source. The association ends with the control connection.

Logs to stdout, flushed, one line per: CONNECT "connect HOST PORT"; UDP ASSOCIATE
"udp-associate"; first datagram of an association to a destination "udp HOST PORT".
"""

import argparse
import errno
import ipaddress
import resource
import select
import socket
import struct
import sys
import threading
import time

CONNECT_TIMEOUT = 10

REPLY_SUCCEEDED = 0x00
REPLY_NETWORK_UNREACHABLE = 0x03
REPLY_HOST_UNREACHABLE = 0x04
REPLY_CONNECTION_REFUSED = 0x05
REPLY_TTL_EXPIRED = 0x06
REPLY_COMMAND_NOT_SUPPORTED = 0x07

ERRNO_REPLIES = {
    errno.ECONNREFUSED: REPLY_CONNECTION_REFUSED,
    errno.ENETUNREACH: REPLY_NETWORK_UNREACHABLE,
    errno.EHOSTUNREACH: REPLY_HOST_UNREACHABLE,
    errno.ETIMEDOUT: REPLY_TTL_EXPIRED,
}

options = None
log_lock = threading.Lock()


def log(line):
    """One whole line to stdout; threads printing at once would interleave otherwise."""
    with log_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def reply(client, code, address=None):
    """Sends a reply; ADDRESS is a (host, port, ...) socket address, zeros when None."""
    if address is None:
        client.sendall(bytes([5, code, 0, 1]) + bytes(6))
    else:
        client.sendall(bytes([5, code, 0]) + encode_address(address[0], address[1]))


def encode_address(host, port):
    """ATYP, ADDR and PORT for an IP address (IPv4-mapped IPv6 comes out as IPv4)."""
    ip = ipaddress.ip_address(host.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    kind = b"\x01" if ip.version == 4 else b"\x04"
    return kind + ip.packed + struct.pack("!H", port)


def decode_udp_header(datagram):
    """(host, port, payload) of a client datagram, or None when it is to be dropped."""
    if len(datagram) < 4 or datagram[2] != 0:
        return None
    kind, at = datagram[3], 4
    if kind == 1:
        end = at + 4
        host = socket.inet_ntop(socket.AF_INET, datagram[at:end]) if end <= len(datagram) else None
    elif kind == 4:
        end = at + 16
        host = socket.inet_ntop(socket.AF_INET6, datagram[at:end]) if end <= len(datagram) else None
    elif kind == 3 and len(datagram) > at:
        end = at + 1 + datagram[at]
        try:
            host = datagram[at + 1:end].decode("ascii") if end <= len(datagram) else None
        except UnicodeDecodeError:
            host = None
    else:
        return None
    if not host or end + 2 > len(datagram):
        return None
    port = struct.unpack("!H", datagram[end:end + 2])[0]
    return host, port, datagram[end + 2:]


def plain_ip(host):
    """The address as text, an IPv4-mapped IPv6 address as IPv4."""
    ip = ipaddress.ip_address(host.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


def pump(source, destination):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            destination.sendall(data)
    except OSError:
        pass
    finally:
        try:
            destination.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def connect_reply(error):
    if isinstance(error, socket.timeout):
        return REPLY_TTL_EXPIRED
    return ERRNO_REPLIES.get(error.errno, REPLY_CONNECTION_REFUSED)


def handle_connect(client, host, port):
    log("connect %s %d" % (host, port))
    if port in options.refuse_port:
        reply(client, REPLY_CONNECTION_REFUSED)
        return
    if options.delay_connect > 0:
        time.sleep(options.delay_connect)
    try:
        upstream = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except OSError as error:
        reply(client, connect_reply(error))
        return
    with upstream:
        upstream.settimeout(None)
        reply(client, REPLY_SUCCEEDED)
        thread = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        thread.start()
        pump(client, upstream)
        thread.join()


class UdpAssociation:
    """One UDP ASSOCIATE: the client-facing socket, an outbound socket per family."""

    def __init__(self, control, requested_port):
        self.control = control
        local = control.getsockname()
        self.client_ip = plain_ip(control.getpeername()[0])
        self.client_port = requested_port or None
        local_ip = plain_ip(local[0])
        family = socket.AF_INET6 if ":" in local_ip else socket.AF_INET
        self.relay = socket.socket(family, socket.SOCK_DGRAM)
        self.relay.bind((local_ip, 0))
        self.client_address = None
        self.outbound = {}
        self.destinations = set()

    def close(self):
        self.relay.close()
        for sock in self.outbound.values():
            sock.close()

    def outbound_socket(self, family):
        if family not in self.outbound:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            self.outbound[family] = sock
        return self.outbound[family]

    def run(self):
        reply(self.control, REPLY_SUCCEEDED, self.relay.getsockname())
        while True:
            readable, _, _ = select.select(
                [self.control, self.relay] + list(self.outbound.values()), [], [])
            for sock in readable:
                if sock is self.control:
                    try:
                        if not self.control.recv(4096):
                            return
                    except OSError:
                        return
                elif sock is self.relay:
                    self.from_client()
                else:
                    self.from_destination(sock)

    def from_client(self):
        try:
            datagram, source = self.relay.recvfrom(65535)
        except OSError:
            return
        if plain_ip(source[0]) != self.client_ip:
            return
        if self.client_port is None:
            self.client_port = source[1]
        elif source[1] != self.client_port:
            return
        self.client_address = source
        decoded = decode_udp_header(datagram)
        if decoded is None:
            return
        host, port, payload = decoded
        try:
            family, _, _, _, address = socket.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM)[0]
            self.outbound_socket(family).sendto(payload, address)
        except OSError:
            return
        if (host, port) not in self.destinations:
            self.destinations.add((host, port))
            log("udp %s %d" % (host, port))

    def from_destination(self, sock):
        try:
            payload, source = sock.recvfrom(65535)
        except OSError:
            return
        if self.client_address is None:
            return
        try:
            self.relay.sendto(b"\x00\x00\x00" + encode_address(source[0], source[1]) + payload,
                              self.client_address)
        except OSError:
            pass


def handle_udp_associate(client, port):
    if options.no_udp:
        reply(client, REPLY_COMMAND_NOT_SUPPORTED)
        return
    log("udp-associate")
    association = UdpAssociation(client, port)
    try:
        association.run()
    finally:
        association.close()


def handle(client):
    with client:
        try:
            version, method_count = read_exactly(client, 2)
            read_exactly(client, method_count)
            if version != 5:
                return
            client.sendall(b"\x05\x00")
            version, command, _, address_type = read_exactly(client, 4)
            if address_type == 1:
                host = socket.inet_ntop(socket.AF_INET, read_exactly(client, 4))
            elif address_type == 4:
                host = socket.inet_ntop(socket.AF_INET6, read_exactly(client, 16))
            elif address_type == 3:
                host = read_exactly(client, read_exactly(client, 1)[0]).decode()
            else:
                return
            port = struct.unpack("!H", read_exactly(client, 2))[0]
            if command == 1:
                handle_connect(client, host, port)
            elif command == 3:
                handle_udp_associate(client, port)
            else:
                reply(client, REPLY_COMMAND_NOT_SUPPORTED)
        except (OSError, UnicodeDecodeError):
            pass


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def main():
    global options
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-udp", action="store_true")
    parser.add_argument("--refuse-port", type=int, action="append", default=[])
    parser.add_argument("--delay-connect", type=float, default=0.0, metavar="SECONDS")
    options = parser.parse_args()
    options.refuse_port = set(options.refuse_port)
    raise_file_limit()
    threading.stack_size(512 * 1024)   # two threads per CONNECT, thousands of them
    family = socket.AF_INET6 if ":" in options.bind else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((options.bind, options.port))
    server.listen(4096)
    log("listening")
    while True:
        try:
            client, _ = server.accept()
        except OSError as error:
            if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                time.sleep(0.05)   # out of descriptors: let others finish, then go on
                continue
            raise
        try:
            threading.Thread(target=handle, args=(client,), daemon=True).start()
        except RuntimeError:   # can't start new thread
            client.close()


if __name__ == "__main__":
    sys.exit(main())
