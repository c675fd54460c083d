#!/bin/bash
# make demo: the whole of psi in throwaway network namespaces, against the lab's Psiphon test
# server. psi up, a page fetched by a normal user through the tunnel, psi-diagnose, a direct
# connection the kill switch refuses, psi down. Needs root; removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lab/fw.bash
source tests/lab/connect.bash
source tests/lab/psi.bash
trap lab_down EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_user() { lab_as "$DESKTOP_UID" "$@"; }

share/create-users share/sysusers.d/psi.conf >/dev/null
step "a lab: this machine (client) -> router -> the Internet (inet), with the real Psiphon server, psiphond, there (packet tunnel offered)"
psi_lab_up --region CA --packet-tunnel
step "sudo psi up"
psi up --timeout 30

step "a normal user (uid $DESKTOP_UID) fetches http://inet.psi.test:8080/ through the tunnel"
as_user curl -sS -m 10 "http://inet.psi.test:8080/"

step "psi-diagnose"
lab_client build/psi-diagnose --config "$LAB_DIR/psi.conf" --probe-ipv4 "$LAB_INET_IP4" --probe-ipv6 "$LAB_INET_IP6" \
    --probe-port 8080 || echo "(psi-diagnose: exit $?)"

step "the same user, bound to the uplink (eth0) around the tunnel: the kill switch refuses"
if as_user curl -sS -m 5 --interface eth0 "http://$LAB_INET_IP4:8080/"; then
    echo "LEAK: the direct connection went through" >&2
    exit 1
fi
echo "refused, as it must be"

step "sudo psi down: the tunnel and the TUN stop; the kill switch stays"
psi down
if as_user curl -sS -m 5 "http://$LAB_INET_IP4:8080/"; then
    echo "LEAK: traffic left with the tunnel down" >&2
    exit 1
fi
echo "nothing leaves with the tunnel down"
lab_client build/psi-fw --config "$LAB_DIR/psi.conf" down >/dev/null
step "done: the namespaces, the processes and the files of the lab are removed"
