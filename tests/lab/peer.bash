# shellcheck shell=bash
# The real Psiphon server (psiphond, built by `make peer` into build/peer) in the lab's inet
# namespace, with a configuration generated for this run by `psiphond generate`. Source after
# lab.bash.
#
#   peer_start NAME [OPTIONS...] [-- JQ]  generate a config in $LAB_DIR/NAME/ and run psiphond
#       with it as root in inet on LAB_INET_IP4; returns once every listener logs "running".
#       OPTIONS: --protocol P:PORT (repeatable; default OSSH:4443 and SSH:4022),
#       --dns IP (the server's resolver: DNSResolverIPAddress and inet's resolv.conf),
#       --packet-tunnel (RunPacketTunnel), --region CC (the entry's region, which generate
#       leaves out), and a psinet database (PsinetDatabaseFilename) with --homepage URL (the
#       sponsor FFFFFFFFFFFFFFFF's home page for every client region) and --discover LINE (an
#       entry the handshake hands out; repeatable).
#       JQ, if given, edits the generated psiphond.config further.
#       Sets PEER_PID (stop this one), PEER_SERVER_PID (the process that serves), PEER_DIR; the entry line (psi-servers' format, readable by the tunnel
#       user) is $LAB_DIR/NAME.entry; psiphond's JSON log is $LAB_DIR/NAME.err.
#   peer_entry_json NAME       the entry's JSON object
#   peer_log NAME MSG          psiphond's log lines whose "msg" is MSG (one JSON object a line)
#   peer_available             psiphond and ConsoleClient are built (make peer)

PEER_BUILD="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/peer"
PEER_PSIPHOND=$PEER_BUILD/psiphond
PEER_CONSOLE_CLIENT=$PEER_BUILD/ConsoleClient

peer_available() { [ -x "$PEER_PSIPHOND" ] && [ -x "$PEER_CONSOLE_CLIENT" ]; }

peer_start() { # NAME [OPTIONS...] [-- JQ]
    local name=$1 protocols=() dns="" packet=false edit='.' listeners region="" homepages=() discovered=()
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --protocol) protocols+=(-protocol "$2"); shift 2 ;;
            --dns) dns=$2; shift 2 ;;
            --packet-tunnel) packet=true; shift ;;
            --region) region=$2; shift 2 ;;
            --homepage) homepages+=("$2"); shift 2 ;;
            --discover) discovered+=("$2"); shift 2 ;;
            --) edit=$2; shift 2 ;;
            *) echo "peer_start: unknown option $1" >&2; return 2 ;;
        esac
    done
    [ ${#protocols[@]} -gt 0 ] || protocols=(-protocol OSSH:4443 -protocol SSH:4022)
    peer_available || { echo "peer_start: psiphond is not built (make peer)" >&2; return 1; }
    PEER_DIR=$LAB_DIR/$name
    mkdir -p "$PEER_DIR"
    if ! (cd "$PEER_DIR" && "$PEER_PSIPHOND" -ipaddress "$LAB_INET_IP4" -web 0 "${protocols[@]}" generate) \
        >"$PEER_DIR/generate.log" 2>&1; then
        echo "psiphond generate ($name) failed:" >&2
        cat "$PEER_DIR/generate.log" >&2
        return 1
    fi
    # The lab's addresses are private, its resolver is in inet.
    peer__psinet "$PEER_DIR/psinet.json" "${#homepages[@]}" "${homepages[@]}" "${discovered[@]}"
    jq --arg dns "$dns" --argjson packet "$packet" --arg psinet "$PEER_DIR/psinet.json" \
        ".AllowBogons = true | .LogFilename = \"\" | .LogLevel = \"info\"
         | (if \$dns != \"\" then .DNSResolverIPAddress = \$dns else . end)
         | .RunPacketTunnel = \$packet | .PsinetDatabaseFilename = \$psinet | $edit" \
        "$PEER_DIR/psiphond.config" >"$PEER_DIR/psiphond.config.new" &&
        mv "$PEER_DIR/psiphond.config.new" "$PEER_DIR/psiphond.config" || return 1
    chmod 600 "$PEER_DIR/psiphond.config"
    # The entry psiphond writes is the hex line psi-servers imports.
    tr -d '\n' <"$PEER_DIR/server-entry.dat" >"$LAB_DIR/$name.entry" && echo >>"$LAB_DIR/$name.entry"
    chmod 644 "$LAB_DIR/$name.entry"
    [ -z "$region" ] || peer_entry_edit "$name" ".region = \"$region\"" "$LAB_DIR/$name.entry"
    # psiphond resolves with the system's resolv.conf and takes DNSResolverIPAddress only when it
    # has none: the inet namespace's own resolv.conf names the lab resolver.
    [ -z "$dns" ] || echo "nameserver $dns" >"/etc/netns/$LAB_INET/resolv.conf"
    listeners=$((${#protocols[@]} / 2))
    lab__spawn "$LAB_INET" "$name" /bin/sh -c "cd '$PEER_DIR' && exec '$PEER_PSIPHOND' -config psiphond.config run"
    PEER_PID=$LAB_LAST_PID
    if ! lab__wait_for 20 peer__running "$name" "$listeners"; then
        echo "psiphond ($name) did not come up:" >&2
        tail -n 30 "$LAB_DIR/$name.err" "$LAB_DIR/$name.out" >&2
        return 1
    fi
    # psiphond runs itself again as a child (its panic wrapper): that child does the work.
    PEER_SERVER_PID=$(pgrep -P "$PEER_PID" | head -n 1)
    PEER_SERVER_PID=${PEER_SERVER_PID:-$PEER_PID}
}

# peer__psinet FILE COUNT HOMEPAGE... DISCOVERED...: psiphond's psinet database.
peer__psinet() {
    local file=$1 count=$2
    shift 2
    python3 - "$file" "$count" "$@" <<'PY'
import datetime, json, sys
file, count, rest = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
homepages, discovered = rest[:count], rest[count:]
now = datetime.datetime.now(datetime.timezone.utc)
window = [(now - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
          (now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")]
json.dump({
    "sponsors": {"FFFFFFFFFFFFFFFF": {"id": "FFFFFFFFFFFFFFFF",
                                      "home_pages": {"None": [{"region": "None", "url": url} for url in homepages]}}},
    "default_sponsor_id": "FFFFFFFFFFFFFFFF",
    "discovery_servers": [{"discovery_date_range": window, "encoded_server_entry": line} for line in discovered],
}, open(file, "w"))
PY
}

peer__running() { [ "$(peer_log "$1" running | wc -l)" -ge "$2" ]; }

peer_log() { # NAME MSG
    grep -h '^{' "$LAB_DIR/$1.err" "$LAB_DIR/$1.out" 2>/dev/null | jq -c --arg msg "$2" 'select(.msg == $msg)' 2>/dev/null
}

peer_entry_json() { # NAME
    python3 -c "import sys; print(bytes.fromhex(open(sys.argv[1]).read().strip()).decode().split(' ', 4)[4])" "$LAB_DIR/$1.entry"
}

# peer_entry_edit NAME JQ OUT: the entry with its JSON edited by JQ, as a line in OUT (mode 644).
peer_entry_edit() {
    local json
    json=$(peer_entry_json "$1" | jq -c "$2") || return 1
    printf '0 0 0 0 %s' "$json" | od -An -tx1 -v | tr -d ' \n' >"$3" && echo >>"$3" && chmod 644 "$3"
}

# peer_event NAME EVENT: psiphond's log lines whose "event_name" is EVENT (server_tunnel, ...).
peer_event() { # NAME EVENT
    grep -h '^{' "$LAB_DIR/$1.err" "$LAB_DIR/$1.out" 2>/dev/null | jq -c --arg event "$2" 'select(.event_name == $event)' 2>/dev/null
}

# Psiphon's own client against a lab server: peer_console_client_start NAME ENTRIES SOCKS_PORT
# [PROTOCOL] runs ConsoleClient as the tunnel user in the client namespace, with the entries as
# its embedded server list and nothing else to reach; notices (JSON lines) in $LAB_DIR/NAME.err.
# PEER_CLIENT_PID. peer_console_client_wait NAME [SECONDS]: until its Tunnels count is 1.
peer_console_client_start() { # NAME ENTRIES SOCKS_PORT [PROTOCOL] [HTTP_PORT]
    local name=$1 dir=$LAB_DIR/$1-data
    mkdir -p "$dir"
    cat >"$dir/config.json" <<CONF
{
  "PropagationChannelId": "FFFFFFFFFFFFFFFF",
  "SponsorId": "FFFFFFFFFFFFFFFF",
  "LocalSocksProxyPort": $3,
  "LocalHttpProxyPort": ${5:-0},
  "DisableRemoteServerListFetcher": true,
  "LimitTunnelProtocols": ["${4:-OSSH}"],
  "DataRootDirectory": "$dir"
}
CONF
    chown -R psiphon-user "$dir"
    chmod 700 "$dir"
    lab__spawn "$LAB_CLIENT" "$name" setpriv --reuid=psiphon-user --regid=psiphon-group --clear-groups \
        --inh-caps=-all --bounding-set=-all -- "$PEER_CONSOLE_CLIENT" -config "$dir/config.json" -serverList "$2"
    PEER_CLIENT_PID=$LAB_LAST_PID
}

peer__client_has_tunnel() { grep '"noticeType":"Tunnels"' "$LAB_DIR/$1.err" 2>/dev/null | tail -n 1 | grep -q '"count":1'; }

peer_console_client_wait() { # NAME [SECONDS]
    lab__wait_for "${2:-20}" peer__client_has_tunnel "$1" && return 0
    echo "ConsoleClient ($1) did not reach Tunnels count 1:" >&2
    tail -n 20 "$LAB_DIR/$1.err" >&2
    return 1
}
