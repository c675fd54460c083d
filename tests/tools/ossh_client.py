#!/usr/bin/python3
"""The client side of psiphond.py, for tests: dial an entry's plain SSH or OSSH port with
paramiko, check the host key against sshHostKey, log in with the JSON password, and send
Psiphon API requests with raw data (PROTOCOL.md sections 3, 4 and 5).

    ossh_client.py --entry LINE [--protocol OSSH|SSH] [--address ADDR]

connects, sends psiphon-handshake and prints the reply on stdout. As a module:
    tunnel = connect(entry, "OSSH")
    reply = global_request(tunnel.transport, "psiphon-handshake", json_bytes)
"""

import argparse
import base64
import json
import os
import random
import socket
import struct
import sys
import threading

import paramiko
from paramiko.common import MSG_REQUEST_FAILURE, MSG_REQUEST_SUCCESS, cMSG_GLOBAL_REQUEST

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import psiphond  # noqa: E402  (the OSSH pieces are shared with the server)


def decode_entry(line):
    """Hex of "<ip> <port> <secret> <cert> <JSON>" -> the JSON object."""
    return json.loads(bytes.fromhex(line.strip()).decode("utf-8").split(" ", 4)[4])


def new_session_id():
    return os.urandom(16).hex()


def open_ossh(sock, keyword, padding_size=None):
    """Sends the preamble and returns the socket for paramiko; its inbound scanner keeps the
    server's padding lines (inbound.scanner.lines_before_version)."""
    seed = os.urandom(psiphond.OSSH_SEED_SIZE)
    outbound = psiphond.StreamObfuscation(
        psiphond.derive_ossh_key(seed, keyword, psiphond.OSSH_CLIENT_TO_SERVER), True)
    inbound = psiphond.StreamObfuscation(
        psiphond.derive_ossh_key(seed, keyword, psiphond.OSSH_SERVER_TO_CLIENT), False)
    if padding_size is None:
        padding_size = random.randint(32, psiphond.OSSH_MAX_PADDING)
    header = struct.pack(">II", psiphond.OSSH_MAGIC, padding_size) + os.urandom(padding_size)
    sock.sendall(seed + outbound.apply_to_all(header))
    obfuscated = psiphond.ObfuscatedSocket(sock, inbound, outbound)
    obfuscated.inbound = inbound
    return obfuscated


def _record_success(transport, message):
    transport.global_answer = ("success", message.get_remainder())
    paramiko.Transport._parse_request_success(transport, message)


def _record_failure(transport, message):
    transport.global_answer = ("failure", None)
    paramiko.Transport._parse_request_failure(transport, message)


class ClientTransport(paramiko.Transport):
    """Tells a REQUEST_FAILURE from the connection ending, which paramiko reports alike."""
    _handler_table = dict(paramiko.Transport._handler_table)
    _handler_table[MSG_REQUEST_SUCCESS] = _record_success
    _handler_table[MSG_REQUEST_FAILURE] = _record_failure
    global_answer = None


class Tunnel:
    def __init__(self, transport, session_id, ssh_socket):
        self.transport = transport
        self.session_id = session_id
        self.ssh_socket = ssh_socket  # an ObfuscatedSocket for OSSH

    def close(self):
        self.transport.close()


def connect(entry, protocol, address=None, session_id=None, password=None, timeout=10):
    """An authenticated paramiko Transport to the entry; raises on any failure."""
    port = entry["sshObfuscatedPort"] if protocol == "OSSH" else entry["sshPort"]
    sock = socket.create_connection((address or entry["ipAddress"], port), timeout)
    ssh_socket = sock
    if protocol == "OSSH":
        ssh_socket = open_ossh(sock, entry["sshObfuscatedKey"].encode("ascii"))
    transport = ClientTransport(ssh_socket)
    transport.banner_timeout = timeout
    transport.start_client(timeout=timeout)
    server_key = transport.get_remote_server_key().asbytes()
    if server_key != base64.b64decode(entry["sshHostKey"]):
        transport.close()
        raise paramiko.SSHException("the host key is not the entry's sshHostKey")
    session_id = session_id or new_session_id()
    payload = {"SessionId": session_id,
               "SshPassword": entry["sshPassword"] if password is None else password}
    transport.auth_password(entry["sshUsername"], json.dumps(payload))
    return Tunnel(transport, session_id, ssh_socket)


def handshake_params(entry, protocol, session_id, **overrides):
    params = {
        "propagation_channel_id": "FFFFFFFFFFFFFFFF",
        "sponsor_id": "FFFFFFFFFFFFFFFF",
        "client_version": "1",
        "client_platform": "Linux",
        "relay_protocol": protocol,
        "server_secret": entry["webServerSecret"],
        "client_session_id": session_id,
        "session_id": session_id,
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def global_request(transport, kind, data, timeout=10):
    """Sends a global request with raw data (no length prefix) and want_reply; returns the raw
    bytes after SSH_MSG_REQUEST_SUCCESS, or None on REQUEST_FAILURE. Raises TimeoutError when
    no answer comes, EOFError when the connection ends first."""
    message = paramiko.Message()
    message.add_byte(cMSG_GLOBAL_REQUEST)
    message.add_string(kind)
    message.add_boolean(True)
    message.add_bytes(data)
    done = threading.Event()
    transport.completion_event = done
    transport.global_answer = None
    transport._send_user_message(message)
    if not done.wait(timeout):
        raise TimeoutError("no %s reply in %ss" % (kind, timeout))
    if transport.global_answer is None:
        raise EOFError("the connection closed before the %s reply" % kind)
    return transport.global_answer[1]


def main(argv=None):
    p = argparse.ArgumentParser(description="Connect to psiphond.py and print the handshake reply.")
    p.add_argument("--entry", required=True, help="a server entry line")
    p.add_argument("--protocol", choices=["OSSH", "SSH"], default="OSSH")
    p.add_argument("--address", help="dial this address instead of ipAddress")
    a = p.parse_args(argv)
    entry = decode_entry(a.entry)
    tunnel = connect(entry, a.protocol, a.address)
    params = handshake_params(entry, a.protocol, tunnel.session_id)
    reply = global_request(tunnel.transport, "psiphon-handshake", json.dumps(params).encode())
    tunnel.close()
    if reply is None:
        sys.stderr.write("psiphon-handshake refused\n")
        return 1
    sys.stdout.write(reply.decode("utf-8") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
