# shellcheck shell=bash
# The whole of psi in the lab: the real psiphond (tests/lab/peer.bash; ARGS of psi_lab_up go to
# peer_start: --region CC, --packet-tunnel), a web page and a resolver in inet,
# a config of the lab's own (run and data directories in LAB_DIR) with the server imported, and
# psi run in the client namespace. Source after fw.bash and connect.bash.
#
#   psi_lab_up      lab_up plus all of the above; the config is $LAB_DIR/psi.conf
#   psi ARGS...     build/psi --config $LAB_DIR/psi.conf ARGS... in the client namespace
#   psi_state JQ    a field of the supervisor's state file

. "$(dirname "${BASH_SOURCE[0]}")/peer.bash"

PSI="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/psi"
PSI_SERVERS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/psi-servers"

psi_lab_up() {
    local tools
    tools="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)"
    lab_up || return 1
    chmod o+x "$LAB_DIR"
    mkdir -p "$LAB_DIR/www" "$LAB_DIR/run" "$LAB_DIR/data"
    chown psiphon-user:psiphon-group "$LAB_DIR/data"
    chmod 750 "$LAB_DIR/data"
    echo "hello from inet" >"$LAB_DIR/www/index.html"
    chmod -R o+rX "$LAB_DIR/www"
    lab__spawn "$LAB_INET" http /usr/bin/python3 -m http.server --bind :: --directory "$LAB_DIR/www" 8080
    lab__spawn "$LAB_INET" dns /usr/bin/python3 "$tools/dns_server.py" --bind "$LAB_INET_IP4" \
        --port 53 --record "inet.psi.test=$LAB_INET_IP4"
    lab__wait_for 5 grep -q listening "$LAB_DIR/dns.out" || return 1
    peer_start psiphond --dns "$LAB_INET_IP4" --homepage "https://home.psi.test/" "$@" || return 1
    PSIPHOND_PID=$PEER_PID
    cat >"$LAB_DIR/psi.conf" <<CONF
{
  "PropagationChannelId": "FFFFFFFFFFFFFFFF",
  "SponsorId": "FFFFFFFFFFFFFFFF",
  "TunnelUser": "psiphon-user",
  "RunDirectory": "$LAB_DIR/run",
  "DataRootDirectory": "$LAB_DIR/data",
  "TunDnsResolver": "$LAB_INET_IP4",
  "LocalSocksProxyPort": 1081,
  "LocalHttpProxyPort": 8081,
  "EstablishTunnelTimeoutSeconds": 0
}
CONF
    chmod 600 "$LAB_DIR/psi.conf"
    lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" import "$LAB_DIR/psiphond.entry"
}

psi() { lab_client "$PSI" --config "$LAB_DIR/psi.conf" "$@"; }

psi_state() { jq -r "$1" "$LAB_DIR/run/psi.state.json"; }
