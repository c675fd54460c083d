#!/usr/bin/env bats
# Proves the remote-server-list fixtures do what they claim, so the
# psi-servers tests that build on them can trust them:
#   make_entries.py  server entry lines (docs/protocol.md 1.1), good and bad
#   make_package.py  authenticated packages (2.2) and each tampering switch
#   list_server.py   HTTPS file server: ETag/304, Range/206/416, If-Range,
#                    cut-after, slow, huge, no-length-huge
#   make_cert.sh     throwaway CA and server certificate
#   dns_server.py    authoritative A/AAAA over UDP and TCP, NXDOMAIN
#   socks5_server.py CONNECT replies, UDP ASSOCIATE relay, 1,000+ connections
#   socks5_udp_client.py  one datagram through UDP ASSOCIATE
# Network: loopback only (127.0.0.1, a random port in 20000-40000); curl
# always runs with --noproxy '*' and --cacert.

bats_require_minimum_version 1.5.0

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

TOOLS="$BATS_TEST_DIRNAME"
PY=/usr/bin/python3

# Decodes entry lines and checks every field.
# args: FILE START_IP REGIONS PROTOCOLS VERSION [HOSTKEY_B64]
CHECK_ENTRIES='
import base64, ipaddress, json, re, struct, sys
path, start, regions, protos, version = sys.argv[1:6]
want_key = sys.argv[6] if len(sys.argv) > 6 else None
raw = open(path).read()
assert raw.endswith("\n"), "output must end with a newline"
lines = raw[:-1].split("\n")
ip0, regions, protos = ipaddress.ip_address(start), regions.split(","), protos.split(",")
keys = ["ipAddress", "webServerPort", "webServerSecret", "sshPort", "sshUsername",
        "sshPassword", "sshHostKey", "sshObfuscatedPort", "sshObfuscatedKey",
        "capabilities", "region", "configurationVersion", "futureField"]
hex64 = re.compile("[0-9a-f]{64}")
secrets = set()
for i, line in enumerate(lines):
    assert re.fullmatch("[0-9a-f]+", line) and len(line) % 2 == 0, "line %d not lowercase hex" % i
    parts = bytes.fromhex(line).decode("utf-8").split(" ", 4)
    assert len(parts) == 5, "line %d: %d parts" % (i, len(parts))
    assert parts[:4] == ["0", "0", "0", "0"], parts[:4]
    e = json.loads(parts[4])
    assert list(e) == keys, list(e)
    assert e["ipAddress"] == str(ip0 + i), e["ipAddress"]
    assert e["webServerPort"] == "8080"
    assert e["sshPort"] == 22 and e["sshObfuscatedPort"] == 443
    assert re.fullmatch("psiphon_[0-9a-f]{16}", e["sshUsername"]), e["sshUsername"]
    for k in ("webServerSecret", "sshPassword", "sshObfuscatedKey"):
        assert hex64.fullmatch(e[k]), (k, e[k])
        secrets.add(e[k])
    blob = base64.b64decode(e["sshHostKey"], validate=True)
    n, = struct.unpack(">I", blob[:4]); t = blob[4:4 + n]
    m, = struct.unpack(">I", blob[4 + n:8 + n])
    assert len(blob) == 8 + n + m, "host key blob length"
    if want_key:
        assert e["sshHostKey"] == want_key, e["sshHostKey"]
    else:
        assert t == b"ssh-ed25519" and m == 32, (t, m)
    assert e["capabilities"] == ["handshake", "ssh-api-requests"] + protos, e["capabilities"]
    assert e["region"] == regions[i % len(regions)], e["region"]
    assert e["configurationVersion"] == int(version) and type(e["configurationVersion"]) is int
    assert e["futureField"] == {"note": "kept as is"}
assert len(secrets) == 3 * len(lines), "secrets repeat"
print("ok", len(lines))
'

# Classifies each non-empty line the way a decoder would reject it.
CLASSIFY='
import base64, collections, ipaddress, json, string, sys
kinds = ["ok", "not-hex", "odd-hex", "no-json", "invalid-json", "bad-ip", "bad-hostkey"]
c = collections.Counter()
def kind(line):
    if set(line) - set(string.hexdigits): return "not-hex"
    if len(line) % 2: return "odd-hex"
    parts = bytes.fromhex(line).decode("utf-8").split(" ", 4)
    if len(parts) < 5: return "no-json"
    try: e = json.loads(parts[4])
    except ValueError: return "invalid-json"
    try: ipaddress.ip_address(e["ipAddress"])
    except ValueError: return "bad-ip"
    try: base64.b64decode(e["sshHostKey"], validate=True)
    except ValueError: return "bad-hostkey"
    return "ok"
empty = 0
for line in open(sys.argv[1], encoding="utf-8").read().split("\n"):
    if line: c[kind(line)] += 1
    else: empty += 1
print(" ".join("%s=%d" % (k, c[k]) for k in kinds), "empty=%d" % empty)
'

# Unpacks a package into DIR/data, DIR/digest, DIR/sig.bin; --raw: no zlib.
UNPACK='
import base64, json, sys, zlib
pkg, out = sys.argv[1], sys.argv[2]
raw = open(pkg, "rb").read()
if "--raw" not in sys.argv:
    try: raw = zlib.decompress(raw)
    except zlib.error as e: sys.exit("zlib: %s" % e)
doc = json.loads(raw.decode("utf-8"))
assert list(doc) == ["data", "signingPublicKeyDigest", "signature"], list(doc)
open(out + "/data", "wb").write(doc["data"].encode("utf-8"))
open(out + "/digest", "w").write(doc["signingPublicKeyDigest"])
open(out + "/sig.bin", "wb").write(base64.b64decode(doc["signature"], validate=True))
'

setup_file() {
    command -v curl >/dev/null || apt-get install -y curl >&2
    export CERTS="$BATS_FILE_TMPDIR/certs" KEYS="$BATS_FILE_TMPDIR/keys"
    export OTHER="$BATS_FILE_TMPDIR/other"
    "$TOOLS/make_cert.sh" "$CERTS" 127.0.0.1 localhost
    "$PY" "$TOOLS/make_package.py" keygen --out-dir "$KEYS"
    "$PY" "$TOOLS/make_package.py" keygen --out-dir "$OTHER"
}

setup() {
    T="$BATS_TEST_TMPDIR"
    LOG="$T/requests.log"
    SERVER_PID=
}

teardown() {
    stop_server
    stop_tools
}

# ---- helpers ---------------------------------------------------------------

sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

lcurl() { curl --noproxy '*' --cacert "$CERTS/ca.pem" -sS "$@"; }

# start_server MODE FILE: sets SERVER_PID, PORT, URL; retries on a busy port.
start_server() {
    local mode=$1 file=$2 try i
    for try in 1 2 3 4 5 6 7 8; do
        PORT=$((20000 + RANDOM % 20001))
        "$PY" "$TOOLS/list_server.py" --cert "$CERTS/server.pem" \
            --key "$CERTS/server.key" --file "$file" --port "$PORT" \
            --bind 127.0.0.1 --mode "$mode" --log "$LOG" \
            >"$T/server.out" 2>"$T/server.err" 3>&- &
        SERVER_PID=$!
        for i in $(seq 100); do
            if grep -qx listening "$T/server.out"; then
                URL="https://127.0.0.1:$PORT"
                return 0
            fi
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        stop_server
    done
    cat "$T/server.err" >&2
    return 1
}

stop_server() {
    if [ -n "${SERVER_PID:-}" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# log_field N FIELD: FIELD of the Nth logged request (1-based), null as "null"
log_field() {
    "$PY" -c 'import json,sys
r = json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2]) - 1])
print("null" if r[sys.argv[3]] is None else r[sys.argv[3]])' "$LOG" "$1" "$2"
}

header() { # header FILE NAME: value of a response header, CR stripped
    grep -i "^$2:" "$1" | tail -n1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'
}

# package_status PKG DATAFILE [--raw]:
# "digest=ok|bad signature=ok|bad data=same|changed" against $KEYS
package_status() {
    local pkg=$1 orig=$2 d
    d=$(mktemp -d "$T/unpack.XXXXXX")
    "$PY" -c "$UNPACK" "$pkg" "$d" ${3:-} || return 1
    base64 -d "$KEYS/public.b64" >"$d/pub.der"
    openssl pkey -pubin -inform DER -in "$d/pub.der" -out "$d/pub.pem" || return 1
    local want dig sig data
    want=$(openssl dgst -sha256 -binary "$KEYS/public.b64" | base64 -w0)
    [ "$(cat "$d/digest")" = "$want" ] && dig=ok || dig=bad
    openssl dgst -sha256 -verify "$d/pub.pem" -signature "$d/sig.bin" \
        "$d/data" >/dev/null 2>&1 && sig=ok || sig=bad
    cmp -s "$d/data" "$orig" && data=same || data=changed
    echo "digest=$dig signature=$sig data=$data"
}

entries() { "$PY" "$TOOLS/make_entries.py" "$@"; }
package() { "$PY" "$TOOLS/make_package.py" "$@"; }

# ---- make_entries.py -------------------------------------------------------

@test "make_entries: default lines decode to 5 parts with every field" {
    entries --count 7 >"$T/list"
    assert_equal "$(wc -l <"$T/list")" 7
    run "$PY" -c "$CHECK_ENTRIES" "$T/list" 10.77.0.1 CA,US,DE OSSH,SSH 1
    assert_success
    assert_output "ok 7"
}

@test "make_entries: options change the ip, region, protocols, version and host key" {
    "$PY" -c 'import base64,struct,sys
s = lambda b: struct.pack(">I", len(b)) + b
blob = s(b"ssh-ed25519") + s(bytes(range(32)))
print("ssh-ed25519", base64.b64encode(blob).decode(), "test@psi")' >"$T/key.pub"
    key=$(cut -d' ' -f2 "$T/key.pub")
    entries --count 9 --start-ip 10.77.0.250 --regions NL,FR --protocols OSSH \
        --version 5 --host-key-file "$T/key.pub" >"$T/list"
    run "$PY" -c "$CHECK_ENTRIES" "$T/list" 10.77.0.250 NL,FR OSSH 5 "$key"
    assert_success
    assert_output "ok 9"
    # the 7th entry crossed into 10.77.1.0
    run bash -c "sed -n 7p '$T/list' | xxd -r -p"
    assert_output --partial '"ipAddress":"10.77.1.0"'
}

@test "make_entries: deterministic for a seed, different for another seed" {
    entries --count 4 --seed 7 >"$T/a"
    entries --count 4 --seed 7 >"$T/b"
    entries --count 4 --seed 8 >"$T/c"
    run cmp "$T/a" "$T/b"
    assert_success
    run cmp -s "$T/a" "$T/c"
    assert_failure
    # only the secrets differ: both still decode with the same addresses
    run "$PY" -c "$CHECK_ENTRIES" "$T/c" 10.77.0.1 CA,US,DE OSSH,SSH 1
    assert_output "ok 4"
}

@test "make_entries: --bad-lines appends each kind in turn and counts them" {
    run --separate-stderr entries --count 3 --bad-lines 14
    assert_success
    printf '%s\n' "$output" >"$T/list"
    assert_equal "$stderr" "$(printf '%s\n' not-hex=3 odd-hex=3 no-json=2 \
        invalid-json=2 bad-ip=2 bad-hostkey=2)"
    assert_equal "$(wc -l <"$T/list")" 17
    run "$PY" -c "$CLASSIFY" "$T/list"
    assert_output "ok=3 not-hex=3 odd-hex=3 no-json=2 invalid-json=2 bad-ip=2 bad-hostkey=2 empty=1"
    # the good lines come first and are untouched by the bad ones
    head -n 3 "$T/list" >"$T/good"
    run "$PY" -c "$CHECK_ENTRIES" "$T/good" 10.77.0.1 CA,US,DE OSSH,SSH 1
    assert_output "ok 3"
}

@test "make_entries: --bad-kinds limits the kinds" {
    run --separate-stderr entries --count 0 --bad-lines 4 --bad-kinds bad-ip,no-json
    assert_success
    assert_equal "$stderr" "$(printf '%s\n' bad-ip=2 no-json=2)"
    printf '%s\n' "$output" >"$T/list"
    run "$PY" -c "$CLASSIFY" "$T/list"
    assert_output "ok=0 not-hex=0 odd-hex=0 no-json=2 invalid-json=0 bad-ip=2 bad-hostkey=0 empty=1"
}

# ---- make_package.py -------------------------------------------------------

@test "make_package keygen: public.b64 is one line of a DER SubjectPublicKeyInfo" {
    run grep -c '' "$KEYS/public.b64"
    assert_output 1
    run tail -c1 "$KEYS/public.b64"   # run strips a trailing newline
    assert_output --regexp '^[A-Za-z0-9+/=]$'
    base64 -d "$KEYS/public.b64" >"$T/pub.der"
    run openssl pkey -pubin -inform DER -in "$T/pub.der" -noout -text
    assert_success
    assert_output --partial "Public-Key: (2048 bit)"
    # it is the public half of private.pem
    run cmp "$T/pub.der" <(openssl pkey -in "$KEYS/private.pem" -pubout -outform DER)
    assert_success
}

@test "make_package: a package verifies with openssl" {
    entries --count 5 >"$T/list"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/pkg"
    run package_status "$T/pkg" "$T/list"
    assert_success
    assert_output "digest=ok signature=ok data=same"
    # stdout gives the same bytes (deterministic)
    package --key "$KEYS/private.pem" --data "$T/list" >"$T/pkg2"
    run cmp "$T/pkg" "$T/pkg2"
    assert_success
}

@test "make_package: --tamper-data breaks only the signature" {
    entries --count 5 >"$T/list"
    run --separate-stderr package --key "$KEYS/private.pem" --data "$T/list" \
        --out "$T/pkg" --tamper-data
    assert_success
    run package_status "$T/pkg" "$T/list"
    assert_output "digest=ok signature=bad data=changed"
    # exactly one character differs, and every line still decodes
    run "$PY" -c 'import sys,zlib,json
a = open(sys.argv[1]).read()
b = json.loads(zlib.decompress(open(sys.argv[2], "rb").read()))["data"]
print(len(a) == len(b), sum(x != y for x, y in zip(a, b)))' "$T/list" "$T/pkg"
    assert_output "True 1"
    "$PY" -c 'import sys,zlib,json
sys.stdout.write(json.loads(zlib.decompress(open(sys.argv[1], "rb").read()))["data"])' \
        "$T/pkg" >"$T/tampered"
    run "$PY" -c "$CLASSIFY" "$T/tampered"
    assert_output --partial "ok=5 "
}

@test "make_package: --wrong-digest breaks only the digest" {
    entries --count 3 >"$T/list"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/pkg" --wrong-digest
    run package_status "$T/pkg" "$T/list"
    assert_output "digest=bad signature=ok data=same"
    # with an explicit key, the digest is that key's
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/pkg2" \
        --wrong-digest "$OTHER/private.pem"
    mkdir "$T/u"
    "$PY" -c "$UNPACK" "$T/pkg2" "$T/u"
    assert_equal "$(cat "$T/u/digest")" \
        "$(openssl dgst -sha256 -binary "$OTHER/public.b64" | base64 -w0)"
}

@test "make_package: --sign-with breaks only the signature, made by the other key" {
    entries --count 3 >"$T/list"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/pkg" \
        --sign-with "$OTHER/private.pem"
    run package_status "$T/pkg" "$T/list"
    assert_output "digest=ok signature=bad data=same"
    mkdir "$T/u"
    "$PY" -c "$UNPACK" "$T/pkg" "$T/u"
    openssl pkey -in "$OTHER/private.pem" -pubout -out "$T/other.pub"
    run openssl dgst -sha256 -verify "$T/other.pub" -signature "$T/u/sig.bin" "$T/u/data"
    assert_output "Verified OK"
}

@test "make_package: --truncate N keeps the first N bytes of a good package" {
    entries --count 5 >"$T/list"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/good"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/cut" --truncate 300
    assert_equal "$(size "$T/cut")" 300
    assert [ "$(size "$T/good")" -gt 300 ]
    run cmp -n 300 "$T/good" "$T/cut"
    assert_success
    run package_status "$T/cut" "$T/list"
    assert_failure
    assert_output --partial "zlib:"
}

@test "make_package: --not-zlib writes the bare JSON" {
    entries --count 2 >"$T/list"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/pkg" --not-zlib
    run head -c 9 "$T/pkg"
    assert_output '{"data":"'
    run package_status "$T/pkg" "$T/list"
    assert_failure
    assert_output --partial "zlib:"
    run package_status "$T/pkg" "$T/list" --raw
    assert_output "digest=ok signature=ok data=same"
}

@test "make_package: --pad-data 10 MiB appends valid entry lines, still signed" {
    entries --count 2 >"$T/list"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/pkg" --pad-data 10485760
    mkdir "$T/u"
    "$PY" -c "$UNPACK" "$T/pkg" "$T/u"
    assert_equal "$(size "$T/u/data")" "$(( $(size "$T/list") + 10485760 ))"
    run cmp -n "$(size "$T/list")" "$T/list" "$T/u/data"
    assert_success
    run package_status "$T/pkg" "$T/u/data"
    assert_output "digest=ok signature=ok data=same"
    run "$PY" -c "$CLASSIFY" "$T/u/data"
    assert_output --regexp '^ok=[0-9]{4,} not-hex=0 odd-hex=0 no-json=0 invalid-json=0 bad-ip=0 bad-hostkey=0 empty=[0-9]+$'
}

@test "make_package: --pad-kind empty pads with newlines, one first if needed" {
    printf 'abc' >"$T/list"
    package --key "$KEYS/private.pem" --data "$T/list" --out "$T/pkg" \
        --pad-data 5 --pad-kind empty
    mkdir "$T/u"
    "$PY" -c "$UNPACK" "$T/pkg" "$T/u"
    run cmp "$T/u/data" <(printf 'abc\n\n\n\n\n')
    assert_success
}

# ---- list_server.py --------------------------------------------------------

@test "list_server: 200 with the file and a strong SHA-256 ETag, logged" {
    entries --count 20 >"$T/list"
    start_server normal "$T/list"
    run lcurl -D "$T/h" -o "$T/got" -w '%{http_code}' "$URL/any/path?x=1"
    assert_success
    assert_output 200
    assert_equal "$(sha256 "$T/got")" "$(sha256 "$T/list")"
    assert_equal "$(header "$T/h" ETag)" "\"$(sha256 "$T/list")\""
    assert_equal "$(header "$T/h" Content-Length)" "$(size "$T/list")"
    assert_equal "$(log_field 1 path)" "/any/path?x=1"
    assert_equal "$(log_field 1 status)" 200
    assert_equal "$(log_field 1 range)" null
}

@test "list_server: If-None-Match gives 304 only for the current ETag" {
    entries --count 5 >"$T/list"
    etag="\"$(sha256 "$T/list")\""
    start_server normal "$T/list"
    run lcurl -o "$T/got" -w '%{http_code}' -H "If-None-Match: $etag" "$URL/"
    assert_output 304
    assert [ ! -s "$T/got" ]              # no body
    run lcurl -o "$T/got" -w '%{http_code}' -H 'If-None-Match: "0000"' "$URL/"
    assert_output 200
    assert_equal "$(sha256 "$T/got")" "$(sha256 "$T/list")"
    assert_equal "$(log_field 1 if_none_match)" "$etag"
    assert_equal "$(log_field 1 status)" 304
    assert_equal "$(log_field 2 status)" 200
}

@test "list_server: the file is re-read on every request" {
    entries --count 5 --seed 1 >"$T/list"
    old="\"$(sha256 "$T/list")\""
    start_server normal "$T/list"
    entries --count 6 --seed 2 >"$T/list.new"
    mv "$T/list.new" "$T/list"
    run lcurl -D "$T/h" -o "$T/got" -w '%{http_code}' -H "If-None-Match: $old" "$URL/"
    assert_output 200
    assert_equal "$(sha256 "$T/got")" "$(sha256 "$T/list")"
    assert_equal "$(header "$T/h" ETag)" "\"$(sha256 "$T/list")\""
}

@test "list_server: Range bytes=N- gives 206, past the end 416" {
    entries --count 5 >"$T/list"
    len=$(size "$T/list")
    start_server normal "$T/list"
    run lcurl -D "$T/h" -o "$T/got" -w '%{http_code}' -r 100- "$URL/"
    assert_output 206
    assert_equal "$(header "$T/h" Content-Range)" "bytes 100-$((len - 1))/$len"
    run cmp "$T/got" <(tail -c +101 "$T/list")
    assert_success
    run lcurl -D "$T/h" -o "$T/got" -w '%{http_code}' -r "$len-" "$URL/"
    assert_output 416
    assert_equal "$(header "$T/h" Content-Range)" "bytes */$len"
    assert_equal "$(log_field 1 range)" "bytes=100-"
    assert_equal "$(log_field 2 status)" 416
}

@test "list_server: If-Range honours the range only for the current ETag" {
    entries --count 5 >"$T/list"
    etag="\"$(sha256 "$T/list")\""
    start_server normal "$T/list"
    run lcurl -o "$T/got" -w '%{http_code}' -r 100- -H "If-Range: $etag" "$URL/"
    assert_output 206
    assert_equal "$(size "$T/got")" "$(( $(size "$T/list") - 100 ))"
    run lcurl -o "$T/got" -w '%{http_code}' -r 100- -H 'If-Range: "stale"' "$URL/"
    assert_output 200
    assert_equal "$(sha256 "$T/got")" "$(sha256 "$T/list")"
    assert_equal "$(log_field 2 if_range)" '"stale"'
    assert_equal "$(log_field 2 range)" "bytes=100-"
}

@test "list_server: cut-after stops the first download, curl -C - resumes it" {
    entries --count 30 >"$T/list"
    start_server cut-after:1000 "$T/list"
    run lcurl -o "$T/got" "$URL/list"
    assert_equal "$status" 18          # partial file
    assert_equal "$(size "$T/got")" 1000
    run lcurl -C - -o "$T/got" -w '%{http_code}' "$URL/list"
    assert_success
    assert_output 206
    assert_equal "$(sha256 "$T/got")" "$(sha256 "$T/list")"
    assert_equal "$(log_field 2 range)" "bytes=1000-"
    # later full requests are normal
    run lcurl -o "$T/again" -w '%{http_code}' "$URL/list"
    assert_output 200
    assert_equal "$(sha256 "$T/again")" "$(sha256 "$T/list")"
}

@test "list_server: slow trickles so curl's low-speed limit aborts" {
    entries --count 5 >"$T/list"
    start_server slow "$T/list"
    SECONDS=0
    run lcurl -o "$T/got" --speed-limit 100 --speed-time 3 --max-time 30 "$URL/"
    assert_equal "$status" 28
    assert_output --partial "too slow"
    assert [ "$SECONDS" -lt 15 ]
    assert [ "$(size "$T/got")" -ge 1 ]
    assert [ "$(size "$T/got")" -le 5 ]
    run cmp -n "$(size "$T/got")" "$T/got" "$T/list"   # the file's bytes
    assert_success
}

@test "list_server: huge announces 2 GiB and curl --max-filesize refuses it" {
    entries --count 5 >"$T/list"
    start_server huge "$T/list"
    run lcurl -o "$T/got" --max-filesize 1000000 --max-time 20 "$URL/"
    assert_equal "$status" 63
    assert_equal "$(log_field 1 status)" 200
    run lcurl -I --max-time 20 "$URL/"
    assert_output --regexp $'Content-Length: 2147483648\r'
}

@test "list_server: no-length-huge streams without Content-Length" {
    entries --count 5 >"$T/list"
    start_server no-length-huge "$T/list"
    run lcurl -D "$T/h" -o /dev/null -w '%{size_download}' --max-time 2 "$URL/"
    assert_equal "$status" 28
    assert [ "${output##*$'\n'}" -gt 1000000 ]
    run header "$T/h" Content-Length
    assert_output ""
    run header "$T/h" Connection
    assert_output close
}

@test "make_cert: the server certificate names every address and chains to the CA" {
    "$TOOLS/make_cert.sh" "$T/c" 127.0.0.1 example.test ::1
    run openssl x509 -in "$T/c/server.pem" -noout -ext subjectAltName
    assert_output --partial "IP Address:127.0.0.1, DNS:example.test, IP Address:0:0:0:0:0:0:0:1"
    run openssl verify -CAfile "$T/c/ca.pem" "$T/c/server.pem"
    assert_output --partial ": OK"
    run openssl verify -CAfile "$CERTS/ca.pem" "$T/c/server.pem"
    assert_failure                     # a fresh CA each time
    run openssl x509 -in "$T/c/server.pem" -noout -checkend $((3 * 86400))
    assert_failure                     # short-lived (2 days)
}

# ---- dns_server.py, socks5_server.py, socks5_udp_client.py ------------------

# args: PORT. Echoes UDP datagrams on 127.0.0.1:PORT.
UDP_ECHO='
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
while True:
    data, source = s.recvfrom(65535)
    s.sendto(data, source)
'

# args: PORT. Accepts TCP on 127.0.0.1:PORT, logs "accepted", holds the connections.
TCP_LISTEN='
import socket, sys
s = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
held = []
while True:
    held.append(s.accept()[0])
    print("accepted", flush=True)
'

# args: PROXY_PORT HOST PORT. One CONNECT: "reply CODE SECONDS".
SOCKS_CONNECT='
import socket, struct, sys, time
proxy, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
start = time.monotonic()
c = socket.create_connection(("127.0.0.1", proxy), timeout=20)
c.sendall(b"\x05\x01\x00\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack("!H", port))
r = b""
while len(r) < 12:
    chunk = c.recv(12 - len(r))
    assert chunk, "proxy closed after %r" % r
    r += chunk
assert r[:2] == b"\x05\x00" and r[2] == 5, r
print("reply %d %.2f" % (r[3], time.monotonic() - start))
'

# args: PROXY_PORT ECHO_PORT. The relay rules of one UDP ASSOCIATE, one line each.
UDP_RULES='
import socket, struct, sys, time
proxy, echo = int(sys.argv[1]), int(sys.argv[2])
c = socket.create_connection(("127.0.0.1", proxy), timeout=5)
c.sendall(b"\x05\x01\x00\x05\x03\x00\x01" + bytes(6))
r = b""
while len(r) < 12:
    r += c.recv(12 - len(r))
assert r[:6] == b"\x05\x00\x05\x00\x00\x01", r
relay = (socket.inet_ntoa(r[6:10]), struct.unpack("!H", r[10:12])[0])
print("relay", relay[0], "port-nonzero", relay[1] != 0)
target = b"\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", echo)
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    return s
def attempt(sock, datagram):
    sock.sendto(datagram, relay)
    try:
        return sock.recv(65535)
    except socket.timeout:
        return None
first, other = udp(), udp()
print("frag-1", attempt(first, b"\x00\x00\x01" + target + b"a"))
print("bad-atyp", attempt(first, b"\x00\x00\x00\x09" + target[1:] + b"b"))
got = attempt(first, b"\x00\x00\x00" + target + b"c")
print("good", got == b"\x00\x00\x00" + target + b"c")
print("other-port", attempt(other, b"\x00\x00\x00" + target + b"d"))
c.close()
time.sleep(0.3)
gone = udp()
gone.connect(relay)
gone.send(b"\x00\x00\x00" + target + b"e")
try:
    gone.recv(65535)
    print("after-close reply")
except ConnectionRefusedError:
    print("after-close refused")
except socket.timeout:
    print("after-close silent")
'

# args: PROXY_PORT COUNT. Opens COUNT CONNECTs at once to an echo server of its own,
# then echoes a line on each while all are open: "echoed COUNT".
SOCKS_MANY='
import resource, selectors, socket, struct, sys, threading
proxy, count = int(sys.argv[1]), int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
def echo():
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                selector.register(listener.accept()[0], selectors.EVENT_READ)
                continue
            data = key.fileobj.recv(4096)
            if data:
                key.fileobj.sendall(data)
            else:
                selector.unregister(key.fileobj)
                key.fileobj.close()
threading.Thread(target=echo, daemon=True).start()
def read(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "closed after %r" % data
        data += chunk
    return data
request = (b"\x05\x01\x00\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") +
           struct.pack("!H", listener.getsockname()[1]))
clients = []
for _ in range(count):
    clients.append(socket.create_connection(("127.0.0.1", proxy), timeout=30))
    clients[-1].sendall(request)
for sock in clients:
    assert read(sock, 12) == b"\x05\x00\x05\x00\x00\x01" + bytes(6)
for i, sock in enumerate(clients):
    sock.sendall(b"%d\n" % i)
echoed = sum(read(sock, len(b"%d\n" % i)) == b"%d\n" % i for i, sock in enumerate(clients))
print("echoed", echoed)
'

# args: PORT. Three queries and a malformed frame in one TCP write, one line per reply.
DNS_TCP='
import socket, struct, sys
def query(query_id, name, qtype):
    q = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack("!HH", qtype, 1)
def read(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "closed after %r" % data
        data += chunk
    return data
queries = [query(1, "example.test", 1), query(2, "example.test", 28), query(3, "nope.test", 1)]
frames = [struct.pack("!H", len(q)) + q for q in queries]
frames.insert(1, b"\x00\x03abc")
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"".join(frames))
for q in queries:
    r = read(s, struct.unpack("!H", read(s, 2))[0])
    query_id, flags, questions, answers = struct.unpack("!HHHH", r[:8])
    print(query_id, "rcode=%d aa=%d questions=%d answers=%d echoed=%s" % (
        flags & 15, flags >> 10 & 1, questions, answers, r[12:len(q)] == q[12:]))
'

# start_tool NAME CMD...: runs CMD with each @PORT@ replaced by a random port in
# 20000-40000 (another one if it exits) until it prints "listening"; sets PORT.
# Output in $T/NAME.out and .err; stop_tools (teardown) ends it.
start_tool() {
    local name=$1 try i arg pid args
    shift
    for try in 1 2 3 4 5 6 7 8; do
        PORT=$((20000 + RANDOM % 20001))
        args=()
        for arg in "$@"; do
            args+=("${arg//@PORT@/$PORT}")
        done
        "${args[@]}" >"$T/$name.out" 2>"$T/$name.err" 3>&- &
        pid=$!
        TOOL_PIDS+=("$pid")
        for i in $(seq 100); do
            grep -qx listening "$T/$name.out" && return 0
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    cat "$T/$name.err" >&2
    return 1
}

stop_tools() {
    local pid
    for pid in ${TOOL_PIDS[@]+"${TOOL_PIDS[@]}"}; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    TOOL_PIDS=()
}

start_dns() {
    start_tool dns "$PY" "$TOOLS/dns_server.py" --bind 127.0.0.1 --bind ::1 --port @PORT@ \
        --record example.test=198.51.100.10 --record example.test=2001:db8:100::10 \
        --record two.test=192.0.2.1 --record two.test=192.0.2.2 --record v4only.test=192.0.2.9
}

ldig() { dig @127.0.0.1 -p "$PORT" +time=2 +tries=1 "$@"; }

start_socks() { # [socks5_server.py flags]
    start_tool socks "$PY" "$TOOLS/socks5_server.py" --bind 127.0.0.1 --port @PORT@ "$@"
    SOCKS_PORT=$PORT
}

@test "dns_server: A over UDP and AAAA over TCP, TTL 60, logged per query" {
    start_dns
    run ldig example.test A +noall +answer
    assert_success
    assert_output --regexp '^example\.test\.[[:space:]]+60[[:space:]]+IN[[:space:]]+A[[:space:]]+198\.51\.100\.10$'
    run ldig example.test AAAA +tcp +short
    assert_output 2001:db8:100::10
    run ldig two.test A +short
    assert_output $'192.0.2.1\n192.0.2.2'
    run dig @::1 -p "$PORT" +time=2 +tries=1 EXAMPLE.Test A +tcp +short
    assert_output 198.51.100.10
    run cat "$T/dns.out"
    assert_output "listening
query udp example.test A
query tcp example.test AAAA
query udp two.test A
query tcp EXAMPLE.Test A"
}

@test "dns_server: NXDOMAIN for an unknown name, NOERROR and no answer for the missing family" {
    start_dns
    run ldig nope.test A +tcp
    assert_output --partial "status: NXDOMAIN"
    assert_output --partial "flags: qr aa rd;"
    assert_output --regexp $'\n;nope\\.test\\.[[:space:]]+IN[[:space:]]+A\n'
    run ldig v4only.test AAAA
    assert_output --partial "status: NOERROR"
    assert_output --partial "QUERY: 1, ANSWER: 0,"
    run ldig example.test MX
    assert_output --partial "status: NOERROR"
    assert_output --partial "ANSWER: 0,"
    assert_equal "$(tail -n1 "$T/dns.out")" "query udp example.test MX"
}

@test "dns_server: several queries on one TCP connection, malformed ones ignored" {
    start_dns
    run "$PY" -c "$DNS_TCP" "$PORT"
    assert_success
    assert_output "1 rcode=0 aa=1 questions=1 answers=1 echoed=True
2 rcode=0 aa=1 questions=1 answers=1 echoed=True
3 rcode=3 aa=1 questions=1 answers=0 echoed=True"
    printf 'garbage' | socat -u - "UDP:127.0.0.1:$PORT"
    run ldig example.test A +short
    assert_output 198.51.100.10
    run grep -c '^query' "$T/dns.out"
    assert_output 4
}

@test "socks5_server: UDP ASSOCIATE relays a datagram to a UDP echo and back, logged" {
    start_tool echo "$PY" -c "$UDP_ECHO" @PORT@
    ECHO_PORT=$PORT
    start_socks
    run "$PY" "$TOOLS/socks5_udp_client.py" --proxy "127.0.0.1:$SOCKS_PORT" \
        --to "127.0.0.1:$ECHO_PORT" --message "hello through socks" --show-source
    assert_success
    assert_output "127.0.0.1 $ECHO_PORT hello through socks"
    run "$PY" "$TOOLS/socks5_udp_client.py" --proxy "127.0.0.1:$SOCKS_PORT" \
        --to "127.0.0.1:$ECHO_PORT" --message again
    assert_output again
    run cat "$T/socks.out"
    assert_output "listening
udp-associate
udp 127.0.0.1 $ECHO_PORT
udp-associate
udp 127.0.0.1 $ECHO_PORT"
}

@test "socks5_server: UDP ASSOCIATE drops FRAG, bad ATYP and other ports, ends with the TCP connection" {
    start_tool echo "$PY" -c "$UDP_ECHO" @PORT@
    ECHO_PORT=$PORT
    start_socks
    run "$PY" -c "$UDP_RULES" "$SOCKS_PORT" "$ECHO_PORT"
    assert_success
    assert_output "relay 127.0.0.1 port-nonzero True
frag-1 None
bad-atyp None
good True
other-port None
after-close refused"
}

@test "socks5_server: --no-udp answers UDP ASSOCIATE with 7, CONNECT still works" {
    start_tool listen "$PY" -c "$TCP_LISTEN" @PORT@
    LISTEN_PORT=$PORT
    start_socks --no-udp
    run "$PY" "$TOOLS/socks5_udp_client.py" --proxy "127.0.0.1:$SOCKS_PORT" \
        --to "127.0.0.1:$LISTEN_PORT"
    assert_equal "$status" 2
    assert_output "socks reply 7"
    run "$PY" -c "$SOCKS_CONNECT" "$SOCKS_PORT" 127.0.0.1 "$LISTEN_PORT"
    assert_output --regexp '^reply 0 '
    run grep -c udp "$T/socks.out"
    assert_output 0
}

@test "socks5_server: --refuse-port gives 5 at once without trying; a closed port gives 5" {
    start_tool listen "$PY" -c "$TCP_LISTEN" @PORT@
    LISTEN_PORT=$PORT
    start_socks --refuse-port "$LISTEN_PORT" --refuse-port 1 --delay-connect 5
    run "$PY" -c "$SOCKS_CONNECT" "$SOCKS_PORT" 127.0.0.1 "$LISTEN_PORT"
    assert_success
    assert_output --regexp '^reply 5 0\.'
    assert_equal "$(grep -c accepted "$T/listen.out")" 0
    assert_equal "$(tail -n1 "$T/socks.out")" "connect 127.0.0.1 $LISTEN_PORT"
    stop_tools
    start_socks
    run "$PY" -c "$SOCKS_CONNECT" "$SOCKS_PORT" 127.0.0.1 1   # nothing listens on port 1
    assert_output --regexp '^reply 5 '
}

@test "socks5_server: --delay-connect holds the CONNECT, then succeeds" {
    start_tool listen "$PY" -c "$TCP_LISTEN" @PORT@
    LISTEN_PORT=$PORT
    start_socks --delay-connect 1
    run "$PY" -c "$SOCKS_CONNECT" "$SOCKS_PORT" 127.0.0.1 "$LISTEN_PORT"
    assert_success
    assert_output --regexp '^reply 0 (1|2)\.'
    assert_equal "$(grep -c accepted "$T/listen.out")" 1
}

@test "socks5_server: 1,200 CONNECTs open at once all echo" {
    start_socks
    run "$PY" -c "$SOCKS_MANY" "$SOCKS_PORT" 1200
    assert_success
    assert_output "echoed 1200"
    assert_equal "$(grep -c '^connect 127.0.0.1 ' "$T/socks.out")" 1200
}
