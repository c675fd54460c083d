#!/usr/bin/python3
"""An HTTP origin for the lab's CDN: it answers every request with what it received.

    http_echo.py --bind ADDR --port P [--cert CERT --key KEY]

Any method, any path: 200 with one JSON object (Content-Length set, keep-alive):
    {"method", "path", "host", "x_forwarded_for", "body_length", "body_sha256", "tls"}
host and x_forwarded_for are the request's headers ("" when absent); the body is read by
Content-Length or chunked. A query "hold=S" (seconds, at most 60) holds the response that long
after the body arrived, as a meek server holds a poll. With --cert and --key it speaks HTTPS
(any certificate: the CDN does not verify its origin's).

Prints "listening" once bound, then one line per request: the JSON object, flushed.
"""

import argparse
import hashlib
import http.server
import ipaddress
import json
import socket
import ssl
import sys
import time
import urllib.parse

MAX_HOLD_SECONDS = 60
MAX_BODY_BYTES = 16 << 20


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_any(self):
        body = self.read_body()
        if body is None:
            self.send_error(400, "bad body")
            return
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            hold = min(float(query.get("hold", ["0"])[0]), MAX_HOLD_SECONDS)
        except ValueError:
            self.send_error(400, "bad hold")
            return
        if hold > 0:
            time.sleep(hold)
        seen = {
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "x_forwarded_for": self.headers.get("X-Forwarded-For", ""),
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "tls": isinstance(self.connection, ssl.SSLSocket),
        }
        print(json.dumps(seen), flush=True)
        reply = (json.dumps(seen) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_any

    def read_body(self):
        """The request's body, or None when its framing is broken or it is too long."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            return None
        body = self.rfile.read(length)
        return body if len(body) == length else None

    def read_chunked(self):
        body = b""
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return body
            if len(body) + size > MAX_BODY_BYTES:
                return None
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(1024).strip():
                return None
            body += chunk

    def log_message(self, format, *args):  # the JSON lines on stdout are the log
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")

    if ipaddress.ip_address(args.bind).version == 6:
        Server.address_family = socket.AF_INET6
    server = Server((args.bind, args.port), EchoHandler)
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        # The handshake happens in the request's thread, so a stalled client holds up no other.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    print("listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
