# shellcheck shell=bash
# psi-connect in the lab: server entries for the lab's servers, and psi-connect started by root
# in the client namespace (it becomes the tunnel user before it opens a socket). Source after
# lab.bash (and sshd.bash for OpenSSH entries); every process goes through lab__spawn.
#
#   connect_entry JSON                  one entry line (psi-servers' format) for the JSON object
#   connect_sshd_entry [HOST_KEY_FILE]  an SSH entry for the last lab sshd (its own host key
#                                       unless another .pub file is given)
#   connect_start NAME ENTRIES ARGS...  psi-connect --entries ENTRIES ARGS...; notices in
#                                       $LAB_DIR/NAME.out, messages in NAME.err; CONNECT_PID
#   connect_wait_tunnels NAME COUNT [SECONDS]   until the last Tunnels notice says COUNT
#   connect_tunnels_notices NAME        how many Tunnels notices NAME has sent so far
#   connect_wait_new_tunnels NAME COUNT SEEN [SECONDS]   until a Tunnels notice after the first
#                                       SEEN says COUNT, however soon another follows it

PSI_CONNECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/psi-connect"

connect_entry() { # JSON
    printf '0 0 0 0 %s' "$1" | od -An -tx1 -v | tr -d ' \n'
    echo
}

connect_sshd_entry() { # [HOST_KEY_PUB]
    local pub=${1:-$LAB_DIR/sshd/host_key.pub} key
    key=$(cut -d' ' -f2 "$pub")
    connect_entry "{\"ipAddress\":\"$LAB_SSHD_ADDR\",\"sshPort\":$LAB_SSHD_PORT,\"sshUsername\":\"root\",\"sshHostKey\":\"$key\",\"capabilities\":[\"SSH\"],\"region\":\"CA\"}"
}

# The tunnel user's copy of the lab's client key, for generic SSH servers.
connect_user_key() {
    local dir=$LAB_DIR/connect-key
    if [ ! -f "$dir/client_key" ]; then
        mkdir -p "$dir" && cp "$LAB_DIR/sshd/client_key" "$dir/" &&
            chown -R psiphon-user "$dir" && chmod 700 "$dir" && chmod 600 "$dir/client_key" || return 1
        chmod o+x "$LAB_DIR"
    fi
    echo "$dir/client_key"
}

connect_config() {
    if [ ! -f "$LAB_DIR/connect.conf" ]; then
        printf '{\n  "PropagationChannelId": "FFFFFFFFFFFFFFFF",\n  "SponsorId": "FFFFFFFFFFFFFFFF"\n}\n' \
            >"$LAB_DIR/connect.conf" && chmod 600 "$LAB_DIR/connect.conf"
    fi
    echo "$LAB_DIR/connect.conf"
}

connect_start() { # NAME ENTRIES ARGS...
    local name=$1 entries=$2 config
    shift 2
    config=$(connect_config) || return 1
    lab__spawn "$LAB_CLIENT" "$name" "$PSI_CONNECT" --config "$config" --entries "$entries" "$@"
    CONNECT_PID=$LAB_LAST_PID
}

connect__tunnel_counts() { # NAME: the count of each Tunnels notice, oldest first
    grep '"noticeType":"Tunnels"' "$LAB_DIR/$1.out" 2>/dev/null | sed -n 's/.*"count":\([0-9]*\).*/\1/p'
}

connect__has_tunnels() { [ "$(connect__tunnel_counts "$1" | tail -n 1)" = "$2" ]; }

connect__has_new_tunnels() { connect__tunnel_counts "$1" | tail -n +"$(($3 + 1))" | grep -qx "$2"; }

connect__report_tunnels() { # NAME COUNT
    echo "psi-connect ($1) did not reach Tunnels count $2; its notices and messages:" >&2
    cat "$LAB_DIR/$1.out" "$LAB_DIR/$1.err" >&2
    return 1
}

connect_wait_tunnels() { # NAME COUNT [SECONDS]
    lab__wait_for "${3:-10}" connect__has_tunnels "$1" "$2" || connect__report_tunnels "$1" "$2"
}

connect_tunnels_notices() { connect__tunnel_counts "$1" | wc -l; }

connect_wait_new_tunnels() { # NAME COUNT SEEN [SECONDS]
    lab__wait_for "${4:-10}" connect__has_new_tunnels "$1" "$2" "$3" || connect__report_tunnels "$1" "$2"
}

# The lab's Psiphon test server (tests/tools/psiphond.py) in the inet namespace on its IPv4
# address, OSSH on port 4443 and SSH on 4022 unless ARGS say otherwise; its entry line in
# $LAB_DIR/NAME.entry (readable by the tunnel user) once it listens. PSIPHOND_PID.
psiphond_start() { # NAME ARGS...
    local name=$1
    shift
    rm -f "$LAB_DIR/$name.entry"
    lab__spawn "$LAB_INET" "$name" /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/../tools/psiphond.py" \
        --listen "$LAB_INET_IP4" --ossh-port 4443 --ssh-port 4022 --entry-file "$LAB_DIR/$name.entry" "$@"
    PSIPHOND_PID=$LAB_LAST_PID
    if ! lab__wait_for 10 test -s "$LAB_DIR/$name.entry"; then
        echo "psiphond ($name) did not come up:" >&2
        cat "$LAB_DIR/$name.err" >&2
        return 1
    fi
    chmod 644 "$LAB_DIR/$name.entry"
}
