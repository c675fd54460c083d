# shellcheck shell=bash
# The whole-path lab of the TUN suites (psi-tun-run.bats, psi-connect-packet.bats): in inet a
# web page on 8080, a resolver that knows inet.psi.test, a line server on 7100 and UDP echo on
# 7200; in the client, a config of the lab's own ($LAB_DIR/psi.conf) with psi-fw and psi-tun up.
# Source after fw.bash.
#
#   tun_lab_up     lab_up plus all of the above
#   tun_lab_down   psi-tun down, psi-fw down, lab_down

PSI_TUN="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/psi-tun"
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)"

tun_lab__http_listening() { [ "$(lab_inet ss -Hnlt "sport = :8080" | wc -l)" -ge 1 ]; }

tun_lab_up() {
    lab_up || return 1
    mkdir -p "$LAB_DIR/run" "$LAB_DIR/www"
    printf '{\n  "RunDirectory": "%s",\n  "TunDnsResolver": "%s"\n}\n' "$LAB_DIR/run" "$LAB_INET_IP4" >"$LAB_DIR/psi.conf"
    chmod 600 "$LAB_DIR/psi.conf"
    chmod o+x "$LAB_DIR"
    echo "hello from inet" >"$LAB_DIR/www/index.html"
    chmod -R o+rX "$LAB_DIR/www"
    lab__spawn "$LAB_INET" http /usr/bin/python3 -m http.server --bind :: --directory "$LAB_DIR/www" 8080
    lab__spawn "$LAB_INET" dns /usr/bin/python3 "$TOOLS/dns_server.py" --bind "$LAB_INET_IP4" \
        --bind "$LAB_INET_IP6" --port 53 --record "inet.psi.test=$LAB_INET_IP4" --record "inet.psi.test=$LAB_INET_IP6"
    lab__spawn "$LAB_INET" lines /usr/bin/python3 "$TOOLS/many_connections.py" serve \
        --bind "$LAB_INET_IP4" --bind "$LAB_INET_IP6" --port 7100
    lab_listen_udp 7200
    lab__wait_for 5 grep -q listening "$LAB_DIR/dns.out" || return 1
    lab__wait_for 5 grep -q listening "$LAB_DIR/lines.out" || return 1
    lab__wait_for 5 tun_lab__http_listening || return 1
    lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" up >/dev/null || return 1
    lab_client "$PSI_TUN" --config "$LAB_DIR/psi.conf" up >/dev/null
}

tun_lab_down() {
    lab_client "$PSI_TUN" --config "$LAB_DIR/psi.conf" down >/dev/null || true
    lab_client "$PSI_FW" --config "$LAB_DIR/psi.conf" down >/dev/null || true
    lab_down
}
