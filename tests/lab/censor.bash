# shellcheck shell=bash
# A censor on the lab's router: nftables rules in the router namespace's own table, inet
# psi_censor (never the host's), on what the client sends (in on rc, or rw after
# lab_add_new_uplink). Each call adds to a policy kept in $LAB_DIR/censor.policy; the whole
# table is then rebuilt from that policy in one nft transaction, so the policies add up (a
# packet passes only if none of them drops it) and their counters keep counting. Source after
# lab.bash, call after lab_up.
#
#   censor_drop_port PROTO PORT       the client's PROTO (tcp, udp) to PORT through the router
#                                     (to inet or the CDN) is dropped. Counter drop_PROTO_PORT.
#   censor_reset_after_first_bytes PORT
#                                     DPI-like: a TCP connection to PORT is set up, then its first
#                                     packet from the client that carries data goes on to the
#                                     server as a RST (the server's side is reset; the data never
#                                     arrives), the client's next packets of that flow (its
#                                     retransmission) are answered with a RST (the client's side
#                                     is reset) and the server's are dropped. Counters reset_PORT
#                                     (connections cut) and reset_PORT_after (their later packets).
#   censor_only_tcp443                everything from the client but TCP to port 443 is dropped,
#                                     DNS and what goes to the router itself included (but IPv6
#                                     neighbour discovery). Counter only_tcp443.
#   censor_only_to ADDRESS...         only these addresses are reachable (e.g. the CDN's:
#                                     censor_only_to "$LAB_CDN_IP4" "$LAB_CDN_IP6"), the router
#                                     itself not (but IPv6 neighbour discovery). Counter only_to.
#   censor_clear                      the table and the policy gone: nothing is censored
#   censor_counter NAME               packets the rules behind counter NAME hit
#   censor_rules                      the table as nft lists it (for a failing test's output)

CENSOR_TABLE=psi_censor

censor_drop_port() { # PROTO PORT
    case $1 in
        tcp | udp) ;;
        *) echo "censor_drop_port: PROTO is tcp or udp, not $1" >&2; return 2 ;;
    esac
    censor__port "$2" || return 2
    censor__add "drop $1 $2"
}

censor_reset_after_first_bytes() { # PORT
    censor__port "$1" || return 2
    censor__add "reset $1"
}

censor_only_tcp443() { censor__add only_tcp443; }

censor_only_to() { # ADDRESS...
    if [ $# -eq 0 ]; then
        echo "censor_only_to: give at least one address" >&2
        return 2
    fi
    local address
    for address; do
        censor__address "$address" || return 2
    done
    censor__add "only_to $*"
}

censor_clear() {
    rm -f "$LAB_DIR/censor.policy"
    if lab_router nft list table inet "$CENSOR_TABLE" >/dev/null 2>&1; then
        lab_router nft delete table inet "$CENSOR_TABLE"
    fi
}

censor_counter() { # NAME
    local listing
    listing=$(lab_router nft -j list counter inet "$CENSOR_TABLE" "$1") || return 1
    jq -e '.nftables[] | select(.counter) | .counter.packets' <<<"$listing"
}

censor_rules() { lab_router nft list table inet "$CENSOR_TABLE"; }

censor__port() { # PORT
    [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ] && return 0
    echo "censor: $1 is not a port" >&2
    return 1
}

censor__address() { # ADDRESS
    [[ $1 =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$ ]] && return 0
    echo "censor: $1 is not an IPv4 or IPv6 address" >&2
    return 1
}

censor__add() { # POLICY LINE
    if grep -qxF "$1" "$LAB_DIR/censor.policy" 2>/dev/null; then
        return 0
    fi
    echo "$1" >>"$LAB_DIR/censor.policy" || return 1
    if ! censor__ruleset | lab_router nft -f -; then
        echo "censor: nft refused the rules for \"$1\":" >&2
        censor__ruleset >&2
        sed -i '$d' "$LAB_DIR/censor.policy"
        return 1
    fi
}

# The table from the policy. "flush table" empties the chains but keeps the named counters.
censor__ruleset() {
    cat <<EOF
table inet $CENSOR_TABLE {}
flush table inet $CENSOR_TABLE
table inet $CENSOR_TABLE {
$(censor__each censor__counters)
    set cut_flows4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags dynamic,timeout; timeout 10m; }
    set cut_flows6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; flags dynamic,timeout; timeout 10m; }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname { "rc", "rw" } jump from_client
        oifname { "rc", "rw" } jump to_client
    }
    chain input {
        type filter hook input priority filter; policy accept;
        iifname { "rc", "rw" } jump client_to_router
    }
    chain from_client {
$(censor__each censor__from_client)
    }
    chain to_client {
$(censor__each censor__to_client)
    }
    chain client_to_router {
        icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept
$(censor__each censor__only)
    }
$(censor__each censor__reset_chain)
}
EOF
}

censor__each() { # FUNCTION: called with each policy line's words
    local words
    while read -ra words; do
        "$1" "${words[@]}"
    done <"$LAB_DIR/censor.policy"
}

# Each of these is called with a policy line split into its words.
censor__counters() { # POLICY WORDS...
    case $1 in
        drop) echo "    counter drop_$2_$3 {}" ;;
        reset) echo "    counter reset_$2 {}"; echo "    counter reset_$2_after {}" ;;
        only_tcp443 | only_to) echo "    counter $1 {}" ;;
    esac
}

censor__from_client() { # POLICY WORDS...
    case $1 in
        drop) echo "        meta l4proto $2 th dport $3 counter name drop_$2_$3 drop" ;;
        reset) echo "        tcp dport $2 jump reset_$2" ;;
        *) censor__only "$@" ;;
    esac
}

censor__to_client() { # POLICY WORDS...
    [ "$1" = reset ] || return 0
    echo "        tcp sport $2 ip daddr . tcp dport . ip saddr . tcp sport @cut_flows4 counter name reset_$2_after drop"
    echo "        tcp sport $2 ip6 daddr . tcp dport . ip6 saddr . tcp sport @cut_flows6 counter name reset_$2_after drop"
}

censor__only() { # POLICY WORDS...
    local address ip4=() ip6=()
    case $1 in
        only_tcp443)
            echo "        meta l4proto != tcp counter name only_tcp443 drop"
            echo "        tcp dport != 443 counter name only_tcp443 drop"
            ;;
        only_to)
            shift
            for address; do
                if [[ $address == *:* ]]; then ip6+=("$address"); else ip4+=("$address"); fi
            done
            censor__only_to_family ip "${ip4[@]}"
            censor__only_to_family ip6 "${ip6[@]}"
            ;;
    esac
}

censor__only_to_family() { # ip|ip6 ADDRESS...
    local family=$1 nfproto=ipv4 list
    shift
    [ "$family" = ip ] || nfproto=ipv6
    if [ $# -eq 0 ]; then
        echo "        meta nfproto $nfproto counter name only_to drop"
        return
    fi
    list=$(printf '%s, ' "$@")
    echo "        $family daddr != { ${list%, } } counter name only_to drop"
}

# A flow already cut: the client's packets get a RST back. Else a packet with data (longer than
# its IP and TCP headers: IPv4 without options, IPv6 without extension headers) cuts the flow:
# it goes on to the server with only RST and ACK set.
censor__reset_chain() { # POLICY WORDS...
    [ "$1" = reset ] || return 0
    local port=$2 offset
    echo "    chain reset_$port {"
    echo "        ip saddr . tcp sport . ip daddr . tcp dport @cut_flows4 counter name reset_${port}_after reject with tcp reset"
    echo "        ip6 saddr . tcp sport . ip6 daddr . tcp dport @cut_flows6 counter name reset_${port}_after reject with tcp reset"
    for offset in 5 6 7 8 9 10 11 12 13 14 15; do
        echo "        ip hdrlength 5 tcp doff $offset ip length > $((20 + offset * 4)) goto cut4_$port"
        echo "        ip6 nexthdr tcp tcp doff $offset ip6 length > $((offset * 4)) goto cut6_$port"
    done
    echo "    }"
    echo "    chain cut4_$port {"
    echo "        add @cut_flows4 { ip saddr . tcp sport . ip daddr . tcp dport } counter name reset_$port tcp flags set rst | ack"
    echo "    }"
    echo "    chain cut6_$port {"
    echo "        add @cut_flows6 { ip6 saddr . tcp sport . ip6 daddr . tcp dport } counter name reset_$port tcp flags set rst | ack"
    echo "    }"
}
