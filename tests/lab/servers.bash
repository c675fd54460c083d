# shellcheck shell=bash
# Helpers for the psi-servers suite: the lab with an HTTPS list server in "inet" that serves
# packages signed by a key these tests generate, and psi-servers run in "client".

# shellcheck source=tests/lab/lab.bash
source "$(dirname "${BASH_SOURCE[0]}")/lab.bash"
load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

PSI_SERVERS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/psi-servers"
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)"
LIST_URL="https://$LAB_INET_IP4/server_list_compressed"

servers_lab_up() {
    lab_up
    export STORE="$LAB_DIR/servers"
    "$TOOLS/make_package.py" keygen --out-dir "$LAB_DIR/key" >/dev/null
    "$TOOLS/make_package.py" keygen --out-dir "$LAB_DIR/other" >/dev/null
    "$TOOLS/make_cert.sh" "$LAB_DIR/pki" "$LAB_INET_IP4" >/dev/null 2>&1
    cat >"$LAB_DIR/psi.conf" <<CONF
{
  "RemoteServerListUrl": "$LIST_URL",
  "RemoteServerListSignaturePublicKey": "$(cat "$LAB_DIR/key/public.b64")",
  "DataRootDirectory": "$LAB_DIR"
}
CONF
    chmod 600 "$LAB_DIR/psi.conf"
}

# psi-servers in the client namespace with the lab's config, store and CA.
psi_servers() {
    local args=("$@") extra=()
    [[ " $* " == *" --store "* ]] || extra+=(--store "$STORE")
    if [[ " $* " == *" fetch "* || " $* " == *" refresh "* ]]; then
        args+=(--ca-file "$LAB_DIR/pki/ca.pem")
    fi
    lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" "${extra[@]}" "${args[@]}"
}

# Serves a package of COUNT fresh entries from inet:443: MODE of list_server.py, then any
# make_package.py switches (tampering, padding).
serve_package() { # COUNT [MODE] [make_package args...]
    local count=$1 mode=${2:-normal}
    shift $(($# >= 2 ? 2 : 1))
    "$TOOLS/make_entries.py" --count "$count" --start-ip 10.60.0.1 >"$LAB_DIR/list.txt"
    "$TOOLS/make_package.py" --key "$LAB_DIR/key/private.pem" --data "$LAB_DIR/list.txt" \
        --out "$LAB_DIR/list.package" "$@" 2>/dev/null
    rm -f "$LAB_DIR/server.log"
    lab__spawn "$LAB_INET" list-server /usr/bin/python3 "$TOOLS/list_server.py" --cert "$LAB_DIR/pki/server.pem" \
        --key "$LAB_DIR/pki/server.key" --file "$LAB_DIR/list.package" --port 443 --bind "$LAB_INET_IP4" \
        --mode "$mode" --log "$LAB_DIR/server.log"
    LIST_SERVER_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q listening "$LAB_DIR/list-server.out"
}

list_server_stop() {
    [ -n "${LIST_SERVER_PID:-}" ] && lab__stop "$LIST_SERVER_PID" TERM
    LIST_SERVER_PID=
}

# Remembers the store (or its absence) so that assert_store_unchanged can compare.
cp_store_or_empty() { # NAME
    if [ -e "$STORE" ]; then cp "$STORE" "$LAB_DIR/$1"; else rm -f "$LAB_DIR/$1"; fi
}

assert_store_unchanged() { # NAME
    if [ -e "$LAB_DIR/$1" ]; then
        cmp "$STORE" "$LAB_DIR/$1" || fail "the store changed"
    else
        [ ! -e "$STORE" ] || fail "a store was written"
    fi
}

# The ipAddress of each entry line on stdin, in order (pick's order).
entry_addresses() {
    python3 -c 'import json, sys
for line in sys.stdin:
    print(json.loads(bytes.fromhex(line.strip()).decode().split(" ", 4)[4])["ipAddress"])'
}

# One line of psi-servers record: ADDRESS PROTOCOL connected|FAILURE-CLASS SECONDS-AGO
outcome_line() {
    local when
    when=$(($(date +%s) - $4))
    if [ "$3" = connected ]; then
        printf '{"address":"%s","protocol":"%s","connected":true,"time":%d}\n' "$1" "$2" "$when"
    else
        printf '{"address":"%s","protocol":"%s","connected":false,"failure":"%s","time":%d}\n' "$1" "$2" "$3" "$when"
    fi
}
