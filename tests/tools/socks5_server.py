#!/usr/bin/python3
"""A minimal SOCKS5 proxy for the psi test lab (RFC 1928: no authentication, CONNECT only,
IPv4, IPv6 and domain names). Logs one line per CONNECT to stdout: "connect HOST PORT".

    socks5_server.py --bind ADDR --port P
"""

import argparse
import socket
import struct
import sys
import threading


def read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


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


def handle(client):
    with client:
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
        if command != 1:
            client.sendall(b"\x05\x07\x00\x01" + bytes(6))
            return
        print("connect %s %d" % (host, port), flush=True)
        try:
            upstream = socket.create_connection((host, port), timeout=10)
        except OSError:
            client.sendall(b"\x05\x05\x00\x01" + bytes(6))
            return
        with upstream:
            upstream.settimeout(None)
            client.sendall(b"\x05\x00\x00\x01" + bytes(6))
            thread = threading.Thread(target=pump, args=(upstream, client), daemon=True)
            thread.start()
            pump(client, upstream)
            thread.join()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.bind, args.port))
    server.listen(64)
    print("listening", flush=True)
    while True:
        client, _ = server.accept()
        threading.Thread(target=handle, args=(client,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
