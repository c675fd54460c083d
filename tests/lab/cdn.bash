# shellcheck shell=bash
# A CDN edge in the lab, as meek's domain fronting goes through: Debian's nginx in a namespace
# of its own, on a fourth link of the router (which forwards between all of them):
#
#   [client] <-> rc [router] ri <-> [inet]
#                     rd
#                     |
#                   eth0 [cdn]   203.0.113.10/24  2001:db8:113::10/64 (router rd: .1, ::1)
#
# nginx listens on 443 (TLS 1.2/1.3, HTTP/1.1, a certificate for FRONT_DOMAIN and
# *.FRONT_DOMAIN from a lab CA, whatever SNI the client sends or none) and with --http on 80.
# It passes each request to the origin routed for its Host header (nginx itself answers 404
# for any other Host) with the Host kept, the client's address added to X-Forwarded-For, the
# bodies streamed both ways unbuffered and long timeouts (meek's long polls), keep-alive to the
# client. An origin routed with --backend-tls is reached over HTTPS, its certificate not
# verified (a CDN told to accept the origin's self-signed one). Source after lab.bash, call
# after lab_up; lab_down removes the namespace and ends nginx, also after a cdn_up that failed.
#
#   cdn_up FRONT_DOMAIN ORIGIN [--backend-tls] [--http]
#                            the namespace, the CA ($LAB_DIR/cdn-ca.pem, for curl --cacert)
#                            and certificate, nginx; FRONT_DOMAIN routed to ORIGIN
#   cdn_route HOST ORIGIN [--backend-tls]
#                            requests with Host HOST (a name, or *.name for all below it) go
#                            to ORIGIN from now on (replacing HOST's route if it had one)
#   cdn_down                 nginx ended, the namespace and $LAB_DIR/cdn removed
#   cdn_address              the CDN's IPv4 address (also $LAB_CDN_IP4; IPv6 $LAB_CDN_IP6)
#   cdn_requests [HOST]      the requests nginx answered (for HOST), one JSON object a line:
#                            client, sni, host, method, uri, status, origin, xff, bytes_sent...
#   cdn_served HOST STATUS   succeeds when nginx answered a request for HOST with STATUS
#   lab_cdn CMD              CMD in the cdn namespace
#
# ORIGIN is IPv4:PORT or [IPv6]:PORT. A request is logged when it ends: a test waits with
# lab__wait_for 5 cdn_served HOST 200. nginx's files are in $LAB_DIR/cdn (nginx.conf,
# routes.conf, access.log, error.log, temp/); it runs as root, its worker as www-data.

export LAB_CDN_IP4=203.0.113.10 LAB_CDN_IP6=2001:db8:113::10
export LAB_ROUTER_CDN_IP4=203.0.113.1 LAB_ROUTER_CDN_IP6=2001:db8:113::1

CDN_NGINX=/usr/sbin/nginx
CDN_WORKER_USER=www-data
CDN_MAKE_CERT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tools" && pwd)/make_cert.sh"

lab_cdn() { ip netns exec "$LAB_PREFIX-cdn" "$@"; }

cdn_address() { echo "$LAB_CDN_IP4"; }

cdn_up() { # FRONT_DOMAIN ORIGIN [--backend-tls] [--http]
    local front=$1 origin=$2 scheme=http listen_http=false
    shift 2 || { echo "cdn_up: usage: cdn_up FRONT_DOMAIN ORIGIN [--backend-tls] [--http]" >&2; return 2; }
    while [ $# -gt 0 ]; do
        case $1 in
            --backend-tls) scheme=https ;;
            --http) listen_http=true ;;
            *) echo "cdn_up: unknown option $1" >&2; return 2 ;;
        esac
        shift
    done
    cdn__valid_host "$front" && cdn__valid_origin "$origin" || return 2
    if [ -e "/run/netns/$LAB_PREFIX-cdn" ]; then
        echo "cdn_up: the CDN of lab $LAB_PREFIX is already up" >&2
        return 1
    fi
    if ! cdn__build "$front" "$scheme://$origin" "$listen_http"; then
        echo "cdn_up: bringing up the CDN failed, taking it down" >&2
        cdn_down
        return 1
    fi
}

cdn_route() { # HOST ORIGIN [--backend-tls]
    local host=$1 origin=$2 scheme=http
    case ${3:-} in
        "") ;;
        --backend-tls) scheme=https ;;
        *) echo "cdn_route: unknown option $3" >&2; return 2 ;;
    esac
    cdn__valid_host "$host" && cdn__valid_origin "$origin" || return 2
    cdn__write_route "$host" "$scheme://$origin" && cdn__reload
}

cdn_down() {
    local pid
    if [ -e "/run/netns/$LAB_PREFIX-cdn" ]; then
        for pid in $(ip netns pids "$LAB_PREFIX-cdn"); do
            lab__stop "$pid" TERM
        done
        ip netns delete "$LAB_PREFIX-cdn"
    fi
    rm -rf "/etc/netns/$LAB_PREFIX-cdn" "$LAB_DIR/cdn" "$LAB_DIR/cdn-ca.pem"
}

cdn_requests() { # [HOST]
    [ -f "$LAB_DIR/cdn/access.log" ] || return 0
    jq -c --arg host "${1:-}" 'select($host == "" or .host == $host)' "$LAB_DIR/cdn/access.log"
}

cdn_served() { # HOST STATUS
    cdn_requests "$1" | jq -e --argjson status "$2" 'select(.status == $status)' >/dev/null
}

# --- building -------------------------------------------------------------------

cdn__build() { # FRONT_DOMAIN ORIGIN_URL LISTEN_HTTP
    local dir=$LAB_DIR/cdn
    mkdir -p "$dir/temp" &&
        cdn__add_namespace &&
        cdn__certificate "$1" &&
        cdn__write_route "$1" "$2" &&
        cdn__write_config "$3" &&
        cdn__check_config &&
        cdn__start
}

cdn__add_namespace() {
    local ns=$LAB_PREFIX-cdn
    lab__add_namespace "$ns" &&
        ip -n "$ns" link add eth0 type veth peer name rd netns "$LAB_ROUTER" &&
        ip -n "$ns" link set eth0 up &&
        ip -n "$LAB_ROUTER" link set rd up &&
        lab__add_address "$LAB_ROUTER" rd "$LAB_ROUTER_CDN_IP4/24" "$LAB_ROUTER_CDN_IP6/64" &&
        lab__add_address "$ns" eth0 "$LAB_CDN_IP4/24" "$LAB_CDN_IP6/64" &&
        ip -n "$ns" route add default via "$LAB_ROUTER_CDN_IP4" &&
        ip -n "$ns" -6 route add default via "$LAB_ROUTER_CDN_IP6" &&
        lab__wait_for 10 cdn__reachable
}

cdn__reachable() {
    lab_client ping -q -c1 -W1 "$LAB_CDN_IP4" >/dev/null 2>&1 &&
        lab_client ping -q -c1 -W1 "$LAB_CDN_IP6" >/dev/null 2>&1
}

cdn__certificate() { # FRONT_DOMAIN
    if ! "$CDN_MAKE_CERT" "$LAB_DIR/cdn/tls" "$1" "*.$1" >"$LAB_DIR/cdn/make_cert.log" 2>&1; then
        echo "cdn_up: make_cert.sh failed:" >&2
        cat "$LAB_DIR/cdn/make_cert.log" >&2
        return 1
    fi
    # Clients of any user read the CA: LAB_DIR becomes traversable (not listable).
    chmod 700 "$LAB_DIR/cdn/tls" && chmod o+x "$LAB_DIR" &&
        install -m 644 "$LAB_DIR/cdn/tls/ca.pem" "$LAB_DIR/cdn-ca.pem"
}

# routes.conf is the body of nginx's map from Host to origin: one "HOST URL;" line per route.
cdn__write_route() { # HOST ORIGIN_URL
    local routes=$LAB_DIR/cdn/routes.conf
    {
        [ ! -f "$routes" ] || grep -vF -e "\"$1\" " "$routes"
        printf '"%s" "%s";\n' "$1" "$2"
    } >"$routes.new" && mv "$routes.new" "$routes"
}

cdn__write_config() { # LISTEN_HTTP
    local dir=$LAB_DIR/cdn http_listen=""
    if [ "$1" = true ]; then
        http_listen="listen 80 default_server; listen [::]:80 default_server;"
    fi
    # The worker reaches its temp directories (nginx makes them its own) through these.
    chmod 711 "$dir" || return 1
    cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user $CDN_WORKER_USER;
pid $dir/nginx.pid;
lock_file $dir/nginx.lock;
error_log $dir/error.log notice;

events {
    worker_connections 1024;
}

http {
    log_format cdn escape=json '{"time":"\$time_iso8601","client":"\$remote_addr","port":\$server_port,'
        '"sni":"\$ssl_server_name","host":"\$host","method":"\$request_method","uri":"\$request_uri",'
        '"status":\$status,"origin":"\$cdn_origin","xff":"\$proxy_add_x_forwarded_for",'
        '"request_length":\$request_length,"bytes_sent":\$bytes_sent,"request_time":\$request_time}';
    access_log $dir/access.log cdn;
    client_body_temp_path $dir/temp/body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    server_tokens off;
    default_type application/octet-stream;

    # A client's connection stays open across requests and long polls.
    keepalive_timeout 120s;
    keepalive_requests 100000;
    client_body_timeout 120s;
    send_timeout 120s;
    client_max_body_size 16m;

    map \$host \$cdn_origin {
        hostnames;
        default "";
        include $dir/routes.conf;
    }

    server {
        listen 443 ssl default_server;
        listen [::]:443 ssl default_server;
        $http_listen
        server_name "";
        ssl_certificate $dir/tls/server.pem;
        ssl_certificate_key $dir/tls/server.key;
        ssl_protocols TLSv1.2 TLSv1.3;

        location / {
            if (\$cdn_origin = "") {
                return 404;
            }
            proxy_pass \$cdn_origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_next_upstream off;
            proxy_connect_timeout 10s;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            proxy_ssl_verify off;
            proxy_ssl_server_name on;
            proxy_ssl_name \$host;
        }
    }
}
EOF
}

cdn__check_config() {
    local dir=$LAB_DIR/cdn
    if ! lab_cdn "$CDN_NGINX" -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/check.log" 2>&1; then
        echo "cdn: nginx -t rejects $dir/nginx.conf:" >&2
        cat "$dir/check.log" >&2
        return 1
    fi
}

cdn__start() {
    local dir=$LAB_DIR/cdn
    lab__spawn "$LAB_PREFIX-cdn" cdn "$CDN_NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" || return 1
    if ! lab__wait_for 5 cdn__listening "$LAB_LAST_PID"; then
        echo "cdn_up: nginx did not listen:" >&2
        tail -n 20 "$dir/error.log" "$LAB_DIR/cdn.err" >&2
        return 1
    fi
}

cdn__listening() { # PID
    ! lab__gone "$1" || return 1
    [ "$(lab_cdn ss -Hltn 'sport = :443' | wc -l)" -ge 2 ]
}

# nginx rereads its configuration on SIGHUP: new workers start, the old ones stop accepting and
# end when their connections do. Done when a new worker runs and no old one listens.
cdn__reload() {
    local master old_workers=()
    master=$(cat "$LAB_DIR/cdn/nginx.pid") || return 1
    mapfile -t old_workers < <(pgrep -P "$master")
    cdn__check_config || return 1
    kill -HUP "$master" || return 1
    if ! lab__wait_for 10 cdn__reloaded "$master" "${old_workers[@]}"; then
        echo "cdn: nginx did not take the new routes:" >&2
        tail -n 20 "$LAB_DIR/cdn/error.log" >&2
        return 1
    fi
}

cdn__reloaded() { # MASTER OLD_WORKER...
    local master=$1 listeners worker
    shift
    pgrep -P "$master" | grep -qvxF -f <(printf '%s\n' "$@") || return 1
    listeners=$(lab_cdn ss -Hltnp)
    for worker; do
        [[ $listeners != *"pid=$worker,"* ]] || return 1
    done
}

# --- what a route may name --------------------------------------------------------

cdn__valid_host() { # HOST
    [[ $1 =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] && return 0
    echo "cdn: $1 is not a host name" >&2
    return 1
}

cdn__valid_origin() { # IPv4:PORT | [IPv6]:PORT
    [[ $1 =~ ^([0-9]{1,3}(\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$ ]] && return 0
    echo "cdn: $1 is not IPv4:PORT or [IPv6]:PORT" >&2
    return 1
}
