#!/bin/bash
# make demo: the whole of psi in throwaway network namespaces, against the lab's Psiphon test
# server. psi up, a page fetched by a normal user through the tunnel, psi-diagnose, a direct
# connection the kill switch refuses, psi down. Needs root; removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lab/fw.bash
source tests/lab/connect.bash
trap lab_down EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as_user() { lab_as "$DESKTOP_UID" "$@"; }
psi() { lab_client build/psi --config "$LAB_DIR/psi.conf" "$@"; }

share/create-users share/sysusers.d/psi.conf >/dev/null
step "a lab: this machine (client) -> router -> the Internet (inet), with a Psiphon test server there"
lab_up
chmod o+x "$LAB_DIR"
mkdir -p "$LAB_DIR/www" "$LAB_DIR/run" "$LAB_DIR/data"
chown psiphon-user:psiphon-group "$LAB_DIR/data"
chmod 750 "$LAB_DIR/data"
echo "hello from the other side of the tunnel" >"$LAB_DIR/www/index.html"
chmod -R o+rX "$LAB_DIR/www"
lab__spawn "$LAB_INET" http /usr/bin/python3 -m http.server --bind :: --directory "$LAB_DIR/www" 8080
lab__spawn "$LAB_INET" dns /usr/bin/python3 tests/tools/dns_server.py --bind "$LAB_INET_IP4" --port 53 \
    --record "inet.psi.test=$LAB_INET_IP4"
lab__wait_for 5 grep -q listening "$LAB_DIR/dns.out"
psiphond_start psiphond --dns-resolver "$LAB_INET_IP4:53" --region CA
cat >"$LAB_DIR/psi.conf" <<CONF
{
  "PropagationChannelId": "FFFFFFFFFFFFFFFF",
  "SponsorId": "FFFFFFFFFFFFFFFF",
  "RunDirectory": "$LAB_DIR/run",
  "DataRootDirectory": "$LAB_DIR/data",
  "TunDnsResolver": "$LAB_INET_IP4",
  "LocalSocksProxyPort": 1081,
  "LocalHttpProxyPort": 8081
}
CONF
chmod 600 "$LAB_DIR/psi.conf"
echo "psi-servers import: $(lab_client build/psi-servers --config "$LAB_DIR/psi.conf" import "$LAB_DIR/psiphond.entry")"

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
