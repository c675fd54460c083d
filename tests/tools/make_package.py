#!/usr/bin/python3
"""Psiphon authenticated data packages (docs/protocol.md section 2.2) for tests.

    make_package.py keygen --out-dir DIR [--bits 2048]
        DIR/private.pem  RSA private key (PKCS#8 PEM)
        DIR/public.b64   base64 of the DER SubjectPublicKeyInfo, one line,
                         no newline at all: the exact text a Psiphon config
                         holds in RemoteServerListSignaturePublicKey

    make_package.py --key PRIVATE.pem --data FILE [--out FILE]
                    [--tamper-data] [--wrong-digest [OTHER.pem]]
                    [--sign-with OTHER.pem] [--truncate N] [--not-zlib]
                    [--pad-data BYTES [--pad-kind entries|empty]]

Writes zlib( {"data": <text of FILE>,
              "signingPublicKeyDigest": b64(SHA-256(b64 text of the SPKI)),
              "signature": b64(RSA PKCS#1 v1.5 SHA-256 over UTF-8 data)} )
to --out (default stdout).  The JSON is compact, keys in that order, and
non-ASCII text is written as raw UTF-8; Psiphon's streaming parser only
understands the \\n escape, so a warning goes to stderr when data needs any
other escape.  The signature comes from `openssl dgst -sha256 -sign`.
RSA PKCS#1 v1.5 and zlib are deterministic, so the same inputs give the
same bytes.

Tampering (each breaks only what it names):
  --tamper-data     after signing, change one character of data.  If data
                    starts with "30" (hex of the legacy "0 0 0 0 " prefix,
                    which clients ignore) its 2nd character becomes "1", so
                    every line still decodes; otherwise the first character
                    that is not a newline is replaced ("0", or "1" if it was
                    "0").  The change is reported on stderr.
  --wrong-digest    digest of another key's base64 text (OTHER.pem, or a
                    throwaway RSA-2048 key made on the spot); the signature
                    is still good.
  --sign-with K     signature made with key K; the digest is still that of
                    --key.
  --truncate N      keep only the first N bytes of the output.
  --not-zlib        write the JSON without zlib.
  --pad-data BYTES  before signing, append exactly BYTES bytes of filler to
                    data.  Filler (--pad-kind entries, the default): if data
                    does not end with a newline, one "\\n" first; then
                    complete, valid entry lines from make_entries.py (seed
                    "pad", addresses counting up from --pad-start-ip,
                    default 10.128.0.1), each ending in "\\n"; the remainder
                    too short for one more entry is empty lines ("\\n").
                    --pad-kind empty: only "\\n" bytes.
"""

import base64
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zlib

sys.dont_write_bytecode = True     # keep tests/tools free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_entries  # noqa: E402

OPENSSL = "openssl"


def openssl(*args, data=None):
    r = subprocess.run([OPENSSL, *args], input=data, capture_output=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr.decode(errors="replace"))
        raise SystemExit("make_package: openssl %s failed" % args[0])
    return r.stdout


def genkey(path, bits):
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
            "rsa_keygen_bits:%d" % bits, "-out", path)


def public_b64(key_path):
    der = openssl("pkey", "-in", key_path, "-pubout", "-outform", "DER")
    return base64.b64encode(der).decode("ascii")


def digest_of(key_path):
    text = public_b64(key_path)
    return base64.b64encode(
        hashlib.sha256(text.encode("ascii")).digest()).decode("ascii")


def sign(key_path, data_bytes):
    with tempfile.NamedTemporaryFile() as f:
        f.write(data_bytes)
        f.flush()
        sig = openssl("dgst", "-sha256", "-sign", key_path, f.name)
    return base64.b64encode(sig).decode("ascii")


def filler(size, kind, start_ip, need_newline):
    """Exactly `size` characters (ASCII, so bytes) of filler."""
    out = []
    left = size
    if need_newline and left > 0:
        out.append("\n")
        left -= 1
    if kind == "entries":
        gen = make_entries.Generator(seed="pad", start_ip=start_ip)
        while left > 0:
            line = gen.good() + "\n"
            if len(line) > left:
                break
            out.append(line)
            left -= len(line)
    out.append("\n" * left)
    return "".join(out)


def tamper(data):
    if not data.strip("\n"):
        raise SystemExit("make_package: --tamper-data needs non-empty data")
    if data.startswith("30"):
        i, new = 1, "1"
    else:
        i = next(k for k, c in enumerate(data) if c != "\n")
        new = "1" if data[i] == "0" else "0"
    sys.stderr.write("tamper-data: offset %d %r -> %r\n" % (i, data[i], new))
    return data[:i] + new + data[i + 1:]


def keygen(argv):
    p = argparse.ArgumentParser(prog="make_package.py keygen")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--bits", type=int, default=2048)
    a = p.parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    priv = os.path.join(a.out_dir, "private.pem")
    genkey(priv, a.bits)
    with open(os.path.join(a.out_dir, "public.b64"), "w") as f:
        f.write(public_b64(priv))
    return 0


def build(argv):
    p = argparse.ArgumentParser(
        prog="make_package.py",
        description="Build a Psiphon authenticated data package "
                    "(or: make_package.py keygen --out-dir DIR [--bits N]).")
    p.add_argument("--key", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out")
    p.add_argument("--tamper-data", action="store_true")
    p.add_argument("--wrong-digest", nargs="?", const="", default=None,
                   metavar="OTHER.pem")
    p.add_argument("--sign-with", metavar="OTHER.pem")
    p.add_argument("--truncate", type=int, metavar="N")
    p.add_argument("--not-zlib", action="store_true")
    p.add_argument("--pad-data", type=int, metavar="BYTES")
    p.add_argument("--pad-kind", choices=["entries", "empty"],
                   default="entries")
    p.add_argument("--pad-start-ip", default="10.128.0.1")
    a = p.parse_args(argv)
    if a.truncate is not None and a.truncate < 0:
        p.error("--truncate must be >= 0")
    if a.pad_data is not None and a.pad_data < 0:
        p.error("--pad-data must be >= 0")

    with open(a.data, encoding="utf-8", newline="") as f:
        data = f.read()
    if a.pad_data:
        data += filler(a.pad_data, a.pad_kind, a.pad_start_ip,
                       bool(data) and not data.endswith("\n"))

    escaped = json.dumps(data, ensure_ascii=False)[1:-1].replace("\\n", "")
    if "\\" in escaped:
        sys.stderr.write("make_package: warning: data needs JSON escapes "
                         "other than \\n; Psiphon's parser cannot read it\n")

    signature = sign(a.sign_with or a.key, data.encode("utf-8"))
    if a.wrong_digest is None:
        digest = digest_of(a.key)
    elif a.wrong_digest:
        digest = digest_of(a.wrong_digest)
    else:
        with tempfile.TemporaryDirectory() as d:
            other = os.path.join(d, "other.pem")
            genkey(other, 2048)
            digest = digest_of(other)
    if a.tamper_data:
        data = tamper(data)

    doc = {"data": data, "signingPublicKeyDigest": digest,
           "signature": signature}
    out = json.dumps(doc, separators=(",", ":"),
                     ensure_ascii=False).encode("utf-8")
    if not a.not_zlib:
        out = zlib.compress(out, 9)
    if a.truncate is not None:
        out = out[:a.truncate]
    if a.out:
        with open(a.out, "wb") as f:
            f.write(out)
    else:
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "keygen":
        return keygen(argv[1:])
    return build(argv)


if __name__ == "__main__":
    sys.exit(main())
