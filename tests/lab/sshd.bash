# shellcheck shell=bash
# Real OpenSSH in the lab: an sshd with throwaway keys in one namespace, and
# "ssh -N -D" as an unprivileged local user in another, the SOCKS proxy that
# psi-tun's end-to-end tests stand on.  Source after lab.bash, call after
# lab_up; every process goes through lab__spawn, so lab_down ends them.
#
#   lab_sshd_start NS ADDR PORT        sshd on ADDR:PORT in NS, root login by key
#   lab_ssh_socks_start NS USER PORT   ssh -D 127.0.0.1:PORT in NS as USER, to
#                                      root@ the last sshd started
#
# Files, in $LAB_DIR/sshd: host_key, client_key, authorized_keys,
# known_hosts (built from host_key; a test may replace it), sshd_config.PORT;
# the user's copies in user-USER/.  Logs in $LAB_DIR/sshd-PORT.err and
# ssh-socks-PORT.err.

LAB_SSHD=/usr/sbin/sshd

lab_sshd_start() { # NS ADDR PORT
    local ns=$1 addr=$2 port=$3 dir=$LAB_DIR/sshd config listen host
    lab__sshd_keys || return 1
    # sshd's privilege separation directory; Debian's unit would create it.
    mkdir -p /run/sshd && chmod 755 /run/sshd || return 1
    listen=$addr host=$addr
    if [[ $addr == *:* ]]; then
        listen="[$addr]"
    fi
    if [ "$port" != 22 ]; then
        host="[$addr]:$port"
    fi
    config=$dir/sshd_config.$port
    cat >"$config" <<EOF || return 1
ListenAddress $listen:$port
HostKey $dir/host_key
PidFile none
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthenticationMethods publickey
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PermitRootLogin yes
AllowTcpForwarding yes
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
UseDNS no
MaxStartups 100:30:200
LogLevel VERBOSE
EOF
    if ! ip netns exec "$ns" "$LAB_SSHD" -t -f "$config" >"$LAB_DIR/sshd-$port.err" 2>&1; then
        echo "lab_sshd_start: sshd -t rejects $config:" >&2
        cat "$LAB_DIR/sshd-$port.err" >&2
        return 1
    fi
    echo "$host $(cut -d' ' -f1-2 "$dir/host_key.pub")" >"$dir/known_hosts" || return 1
    lab__spawn "$ns" "sshd-$port" "$LAB_SSHD" -D -e -f "$config" || return 1
    if ! lab__wait_for 5 lab__sshd_listening "$ns" "$port" "$LAB_LAST_PID"; then
        echo "lab_sshd_start: sshd did not listen on $listen:$port:" >&2
        cat "$LAB_DIR/sshd-$port.err" >&2
        return 1
    fi
    LAB_SSHD_ADDR=$addr LAB_SSHD_PORT=$port
    export LAB_SSHD_ADDR LAB_SSHD_PORT
}

lab_ssh_socks_start() { # NS USER PORT
    local ns=$1 user=$2 port=$3 dir=$LAB_DIR/sshd uid gid home pid tries=100
    uid=$(id -u "$user") && gid=$(id -g "$user") || return 1
    if [ -z "${LAB_SSHD_ADDR:-}" ]; then
        echo "lab_ssh_socks_start: no sshd, call lab_sshd_start first" >&2
        return 1
    fi
    # The user must reach its copies: LAB_DIR and sshd/ become traversable
    # (not listable); user-USER/ is the user's own, the key in it mode 600.
    home=$dir/user-$user
    chmod o+x "$LAB_DIR" "$dir" &&
        mkdir -p "$home" &&
        cp "$dir/client_key" "$dir/known_hosts" "$home/" &&
        chown -R "$uid:$gid" "$home" &&
        chmod 700 "$home" && chmod 600 "$home/client_key" "$home/known_hosts" || return 1
    # -F none: neither /etc/ssh/ssh_config nor a ~/.ssh of the user counts.
    lab__spawn "$ns" "ssh-socks-$port" setpriv --reuid="$uid" --regid="$gid" \
        --clear-groups --inh-caps=-all --bounding-set=-all -- \
        /usr/bin/ssh -F none -N -D "127.0.0.1:$port" \
        -i "$home/client_key" -o IdentitiesOnly=yes \
        -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$home/known_hosts" \
        -o GlobalKnownHostsFile=/dev/null -o UpdateHostKeys=no \
        -o BatchMode=yes -o ExitOnForwardFailure=yes -o ServerAliveInterval=5 \
        -o ConnectTimeout=5 -p "$LAB_SSHD_PORT" "root@$LAB_SSHD_ADDR" || return 1
    pid=$LAB_LAST_PID
    while ! lab__socks_listening "$ns" "$port"; do
        tries=$((tries - 1))
        if lab__gone "$pid" || [ "$tries" -le 0 ]; then
            echo "lab_ssh_socks_start: ssh -D 127.0.0.1:$port did not come up:" >&2
            cat "$LAB_DIR/ssh-socks-$port.err" >&2
            lab__stop "$pid" TERM
            return 1
        fi
        sleep 0.1
    done
}

# Throwaway host and client keys, made once per lab.
lab__sshd_keys() {
    local dir=$LAB_DIR/sshd
    if [ ! -d "$dir" ]; then
        mkdir "$dir" && chmod 700 "$dir" || return 1
    fi
    if [ ! -f "$dir/host_key" ]; then
        ssh-keygen -q -t ed25519 -N '' -C psi-lab-host -f "$dir/host_key" || return 1
    fi
    if [ ! -f "$dir/client_key" ]; then
        ssh-keygen -q -t ed25519 -N '' -C psi-lab-client -f "$dir/client_key" &&
            cp "$dir/client_key.pub" "$dir/authorized_keys" || return 1
    fi
}

lab__sshd_listening() { # NS PORT PID
    ! lab__gone "$3" || return 1
    [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2")" ]
}

lab__socks_listening() { # NS PORT
    [ -n "$(ip netns exec "$1" ss -Hltn "src 127.0.0.1 and sport = :$2")" ]
}
