#!/usr/bin/python3
"""UDP and TCP echo for the packet tunnel's self-test: one process, no forks, and a line per
datagram or connection that says who sent it, so a test can see the source address the
packet tunnel gave its packets.

    packet_echo.py [--udp ADDR:PORT ...] [--tcp ADDR:PORT ...]

Prints "listening" once every socket is bound, then, flushed:
    udp PEER_ADDR PEER_PORT -> LOCAL_ADDR LOCAL_PORT bytes=N   (the datagram is sent back)
    tcp PEER_ADDR PEER_PORT -> LOCAL_ADDR LOCAL_PORT           (its bytes are echoed)
IPv6 addresses are written bare ("[ADDR]:PORT" on the command line).
"""

import argparse
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from psiphond import parse_host_port  # noqa: E402

print_lock = threading.Lock()


def say(line):
    with print_lock:
        print(line, flush=True)


def bound_socket(kind, address):
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    return sock


def serve_udp(sock):
    local = sock.getsockname()
    while True:
        data, peer = sock.recvfrom(65536)
        say("udp %s %d -> %s %d bytes=%d" % (peer[0], peer[1], local[0], local[1], len(data)))
        sock.sendto(data, peer)


def echo_tcp(conn, peer, local):
    say("tcp %s %d -> %s %d" % (peer[0], peer[1], local[0], local[1]))
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)
        except OSError:
            return


def serve_tcp(sock):
    local = sock.getsockname()
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=echo_tcp, args=(conn, peer, local), daemon=True).start()


def main(argv=None):
    p = argparse.ArgumentParser(description="UDP/TCP echo that logs each sender.")
    p.add_argument("--udp", action="append", default=[], type=parse_host_port, metavar="ADDR:PORT")
    p.add_argument("--tcp", action="append", default=[], type=parse_host_port, metavar="ADDR:PORT")
    a = p.parse_args(argv)
    threads = []
    for address in a.udp:
        threads.append(threading.Thread(target=serve_udp, daemon=True,
                                        args=(bound_socket(socket.SOCK_DGRAM, address),)))
    for address in a.tcp:
        sock = bound_socket(socket.SOCK_STREAM, address)
        sock.listen(128)
        threads.append(threading.Thread(target=serve_tcp, args=(sock,), daemon=True))
    for thread in threads:
        thread.start()
    say("listening")
    threading.Event().wait()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
