#!/usr/bin/env bats
# psi-servers against a real HTTPS server in the lab's "inet" namespace, serving signed
# packages made with a key pair these tests generate. Every bad input must leave the store
# byte for byte as it was.

bats_require_minimum_version 1.5.0

setup_file() {
    load lab/servers
    servers_lab_up
}

teardown_file() {
    load lab/servers
    lab_down
}

setup() {
    load lab/servers
    rm -f "$STORE" "$STORE.lock" "$LAB_DIR"/remote_server_list.part*
    list_server_stop
}

teardown() {
    list_server_stop
    lab_client ip route replace default via "$LAB_ROUTER_IP4"
}

@test "import: an embedded list with bad lines keeps the good ones and names what it skipped" {
    "$TOOLS/make_entries.py" --count 20 --bad-lines 6 >"$LAB_DIR/embedded.txt" 2>/dev/null
    run psi_servers import "$LAB_DIR/embedded.txt"
    assert_success
    assert_line "imported 20 entries: 20 added, 0 updated, 0 unchanged"
    assert_line --regexp '^skipped 6 bad lines: .*not hex'
    [ "$(psi_servers list --json | jq length)" -eq 20 ]

    run psi_servers import - <"$LAB_DIR/embedded.txt"
    assert_line "imported 20 entries: 0 added, 0 updated, 20 unchanged"
    "$TOOLS/make_entries.py" --count 3 --version 2 >"$LAB_DIR/newer.txt"
    run psi_servers import "$LAB_DIR/newer.txt"
    assert_line "imported 3 entries: 0 added, 3 updated, 0 unchanged"
    run psi_servers import --json "$LAB_DIR/newer.txt"
    [ "$(jq .unchanged <<<"$output")" -eq 3 ]
    run psi_servers import --force --source TARGET "$LAB_DIR/newer.txt"
    assert_line "imported 3 entries: 0 added, 3 updated, 0 unchanged"
    [ "$(psi_servers list --json | jq '[.[] | select(.source == "TARGET")] | length')" -eq 3 ]
}

@test "import: a list of nothing but bad lines fails and changes nothing" {
    "$TOOLS/make_entries.py" --count 2 >"$LAB_DIR/good.txt"
    psi_servers import "$LAB_DIR/good.txt"
    cp "$STORE" "$LAB_DIR/before"
    printf 'zz\nnot an entry\n' >"$LAB_DIR/bad.txt"
    run psi_servers import "$LAB_DIR/bad.txt"
    assert_failure 1
    assert_output --partial "no valid entry in the input"
    cmp "$STORE" "$LAB_DIR/before"
}

@test "import --source DISCOVERY: non-global addresses and all beyond ten are refused and named, not failed; a list file's are all taken" {
    "$TOOLS/make_entries.py" --count 3 --start-ip 192.168.77.1 >"$LAB_DIR/handed-out.txt"
    "$TOOLS/make_entries.py" --count 12 --start-ip 192.175.48.1 --seed global >>"$LAB_DIR/handed-out.txt"
    run psi_servers import --source DISCOVERY "$LAB_DIR/handed-out.txt"
    assert_success
    assert_line "imported 10 entries: 10 added, 0 updated, 0 unchanged"
    assert_line "refused 5 discovered entries: 2 beyond 10 discovered in one import, 3 non-global address"
    [ "$(psi_servers list --json | jq '[.[] | select(.source == "DISCOVERY")] | length')" -eq 10 ]
    [ "$(psi_servers list --json | jq '[.[] | select(.address | startswith("192.168."))] | length')" -eq 0 ]
    # Nothing but refused entries: well-formed, so not a failure.
    "$TOOLS/make_entries.py" --count 2 --start-ip 127.0.0.1 >"$LAB_DIR/loopback.txt"
    run psi_servers import --json --source DISCOVERY "$LAB_DIR/loopback.txt"
    assert_success
    [ "$(jq -c .refused <<<"$output")" = '{"non-global address":2}' ]
    [ "$(jq .added <<<"$output")" -eq 0 ]
    # The same lines from a list file (EMBEDDED) are the user's choice: all stored.
    run psi_servers import "$LAB_DIR/handed-out.txt"
    assert_line "imported 15 entries: 5 added, 0 updated, 10 unchanged"
    [ "$(psi_servers list --json | jq '[.[] | select(.address | startswith("192.168."))] | length')" -eq 3 ]
}

@test "fetch: a signed remote list over HTTPS is verified and stored as REMOTE" {
    serve_package 30
    run psi_servers fetch
    assert_success
    assert_output --partial "remote list verified; stored 30 entries: 30 added"
    [ "$(psi_servers list --json | jq '[.[] | select(.source == "REMOTE")] | length')" -eq 30 ]
    [ "$(stat -c %a "$STORE")" = 600 ]
}

@test "fetch: an unchanged list is not downloaded again (ETag, 304)" {
    serve_package 5
    psi_servers fetch
    run psi_servers fetch
    assert_success
    assert_output "remote server list unchanged since the last fetch"
    [ "$(jq -r 'select(.status == 304) | .if_none_match' "$LAB_DIR/server.log")" != null ]
    run psi_servers fetch --force
    assert_output --partial "0 added, 0 updated, 5 unchanged"
}

@test "fetch: a transfer cut in the middle resumes with Range where it stopped" {
    serve_package 400 cut-after:20000
    cp_store_or_empty before
    run psi_servers fetch
    assert_failure 1
    assert_output --regexp 'download failed: .*bytes kept to resume'
    assert_store_unchanged before
    run psi_servers fetch
    assert_success
    assert_output --partial "400 added"
    [ "$(jq -r 'select(.status == 206) | .range' "$LAB_DIR/server.log")" = "bytes=20000-" ]
    [ "$(jq -r 'select(.status == 206) | .if_range' "$LAB_DIR/server.log")" != null ]
}

@test "fetch: every tampered or broken list is refused with one line, and the store stays byte for byte" {
    "$TOOLS/make_entries.py" --count 4 >"$LAB_DIR/seed.txt"
    psi_servers import "$LAB_DIR/seed.txt"
    cp "$STORE" "$LAB_DIR/before"
    local case expected
    while IFS='|' read -r case expected; do
        # shellcheck disable=SC2086
        serve_package 10 normal $case
        run psi_servers fetch --max-size 1
        [ "$status" -eq 1 ] || fail "$case: exit $status: $output"
        [ "${#lines[@]}" -eq 1 ] || fail "$case: not one line: $output"
        [[ $output == *"$expected"* ]] || fail "$case: $output"
        cmp "$STORE" "$LAB_DIR/before" || fail "$case: the store changed"
        list_server_stop
    done <<EOF
--tamper-data|the signature does not verify
--sign-with $LAB_DIR/other/private.pem|the signature does not verify
--wrong-digest $LAB_DIR/other/private.pem|signed for another key
--truncate 300|truncated
--not-zlib|not zlib data
--pad-data 9000000 --pad-kind entries|larger than 1 MiB
--pad-data 6000000 --pad-kind empty|decompresses to more than 4 MiB
EOF
}

@test "fetch: a list that verifies but holds no usable entry fails, changes nothing, and is fetched again next time" {
    "$TOOLS/make_entries.py" --count 4 >"$LAB_DIR/seed.txt"
    psi_servers import "$LAB_DIR/seed.txt"
    cp "$STORE" "$LAB_DIR/before"
    printf 'not hex at all\n0000\n' >"$LAB_DIR/useless.txt"
    "$TOOLS/make_package.py" --key "$LAB_DIR/key/private.pem" --data "$LAB_DIR/useless.txt" \
        --out "$LAB_DIR/list.package" 2>/dev/null
    lab__spawn "$LAB_INET" list-server /usr/bin/python3 "$TOOLS/list_server.py" --cert "$LAB_DIR/pki/server.pem" \
        --key "$LAB_DIR/pki/server.key" --file "$LAB_DIR/list.package" --port 443 --bind "$LAB_INET_IP4" \
        --mode normal --log "$LAB_DIR/server.log"
    LIST_SERVER_PID=$LAB_LAST_PID
    lab__wait_for 5 grep -q listening "$LAB_DIR/list-server.out"
    local attempt
    for attempt in 1 2; do
        run psi_servers fetch
        assert_failure 1
        assert_output --partial "the remote list verified, but none of its 2 entries could be used"
        cmp "$STORE" "$LAB_DIR/before"
    done
    list_server_stop
}

@test "fetch: a slow-loris server and an endless body are cut off" {
    cp "$STORE" "$LAB_DIR/before" 2>/dev/null || true
    serve_package 3 slow
    run psi_servers fetch --timeout 3
    assert_failure 1
    assert_output --partial "download failed"
    list_server_stop
    serve_package 3 no-length-huge
    run psi_servers fetch --max-size 2
    assert_failure 1
    assert_output --partial "larger than 2 MiB"
    [ ! -e "$STORE" ]
}

@test "fetch: a server whose certificate is not trusted is refused" {
    serve_package 3
    run lab_client "$PSI_SERVERS" --config "$LAB_DIR/psi.conf" --store "$STORE" fetch
    assert_failure 1
    assert_output --partial "download failed"
    [ ! -e "$STORE" ]
}

@test "refresh: rate-limited, quiet, exit 0 updated / 4 unchanged / 1 failed" {
    serve_package 6
    run psi_servers refresh
    assert_success
    assert_output ""
    local requests
    requests=$(wc -l <"$LAB_DIR/server.log")
    run psi_servers refresh
    assert_failure 4
    assert_output ""
    [ "$(wc -l <"$LAB_DIR/server.log")" -eq "$requests" ] || fail "a fresh list was fetched again"
    run psi_servers refresh --force
    assert_failure 4
    list_server_stop
    run psi_servers refresh --force
    assert_failure 1
    assert_output --partial "download failed"
}

@test "refresh: concurrent runs wait for each other and never tear the store" {
    serve_package 300
    local pids=() i
    for i in 1 2 3 4; do
        psi_servers refresh --force >"$LAB_DIR/refresh.$i" 2>&1 &
        pids+=($!)
    done
    local statuses=""
    for pid in "${pids[@]}"; do
        wait "$pid" && statuses+="0 " || statuses+="$? "
    done
    [[ $statuses =~ ^((0|4)\ )+$ ]] || fail "exit statuses: $statuses"
    [[ $statuses == *0* ]] || fail "none updated: $statuses"
    [ "$(psi_servers list --json | jq length)" -eq 300 ]
}

@test "pick: entry lines for psi-connect, filtered, counted, deterministic with a seed" {
    "$TOOLS/make_entries.py" --count 30 --regions CA,US,DE >"$LAB_DIR/entries.txt"
    "$TOOLS/make_entries.py" --count 5 --start-ip 10.99.0.1 --protocols QUIC >>"$LAB_DIR/entries.txt"
    psi_servers import "$LAB_DIR/entries.txt"
    [ "$(psi_servers pick | wc -l)" -eq 30 ]
    [ "$(psi_servers pick --region CA | wc -l)" -eq 10 ]
    [ "$(psi_servers pick --count 4 | wc -l)" -eq 4 ]
    [ "$(psi_servers pick --protocol OSSH --region US --count 100 | wc -l)" -eq 10 ]
    [ "$(psi_servers pick --seed 3)" = "$(psi_servers pick --seed 3)" ]
    [ "$(psi_servers pick --seed 3)" != "$(psi_servers pick --seed 4)" ]
    # Every picked line is a line that psi-servers itself reads back.
    psi_servers pick --region DE | psi_servers --store "$LAB_DIR/other.store" import -
    [ "$(psi_servers --store "$LAB_DIR/other.store" list --json | jq '[.[] | select(.region == "DE")] | length')" -eq 10 ]
    run psi_servers pick --region FR
    assert_failure 1
    assert_output --partial "no stored server matches (region FR"
}

@test "show hides secrets unless asked; list, regions, remove, export" {
    "$TOOLS/make_entries.py" --count 6 --regions CA,US >"$LAB_DIR/entries.txt"
    psi_servers import "$LAB_DIR/entries.txt"
    run psi_servers show 10.77.0.1
    assert_success
    [ "$(jq -r .sshPassword <<<"$output")" = "[redacted: --secrets shows it]" ]
    [ "$(jq -r .futureField.note <<<"$output")" = "kept as is" ]
    run psi_servers show --secrets 10.77.0.1
    [[ $(jq -r .sshPassword <<<"$output") =~ ^[0-9a-f]{64}$ ]]
    run psi_servers list
    assert_line --regexp '^ADDRESS +REGION +PROTOCOLS +SOURCE'
    assert_line --regexp '^10\.77\.0\.2 +US +SSH,OSSH +EMBEDDED +- +0$'
    run psi_servers regions --json
    [ "$(jq .CA <<<"$output")" -eq 3 ]
    run psi_servers remove 10.77.0.1
    assert_output "removed 10.77.0.1"
    run psi_servers remove 10.77.0.1
    assert_failure 1
    assert_output --partial "no server 10.77.0.1 in the store"
    psi_servers export >"$LAB_DIR/exported.txt"
    [ "$(wc -l <"$LAB_DIR/exported.txt")" -eq 5 ]
    grep -q "$(sed -n 2p "$LAB_DIR/entries.txt")" "$LAB_DIR/exported.txt"
}

@test "record: what tunnels did orders pick and shows in list; unknown servers and bad lines change nothing" {
    "$TOOLS/make_entries.py" --count 6 --regions CA,US >"$LAB_DIR/entries.txt"
    psi_servers import "$LAB_DIR/entries.txt"
    {
        outcome_line 10.77.0.3 OSSH connected 3600
        outcome_line 10.77.0.5 OSSH timeout 600
        outcome_line 10.77.0.5 SSH refused 300
        outcome_line 10.99.9.9 OSSH connected 60
        outcome_line 10.77.0.4 OSSH connected -3600
    } >"$LAB_DIR/outcomes"
    run psi_servers record "$LAB_DIR/outcomes"
    assert_success
    assert_line "recorded 3 outcomes: 1 connected, 2 failed"
    assert_line "refused 2 outcomes: 1 a time in the future, 1 not in the store"
    run psi_servers list
    assert_line --regexp '^10\.77\.0\.3 +CA +SSH,OSSH +EMBEDDED +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} +0$'
    assert_line --regexp '^10\.77\.0\.5 +CA +SSH,OSSH +EMBEDDED +- +2 refused [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}$'
    assert_line --regexp '^10\.77\.0\.4 +US +SSH,OSSH +EMBEDDED +- +0$'
    run psi_servers list --json
    [ "$(jq -c '.[] | select(.address == "10.77.0.5") | [.failures, .lastFailure]' <<<"$output")" = '[2,"refused"]' ]
    [ "$(jq '[.[] | select(.lastConnected > 0)] | length' <<<"$output")" -eq 1 ]
    [ "$(jq length <<<"$output")" -eq 6 ] || fail "an outcome created an entry"
    local seed order
    for seed in 1 2 3; do
        order=$(psi_servers pick --seed "$seed" | entry_addresses)
        [ "$(head -n 1 <<<"$order")" = 10.77.0.3 ] || fail "seed $seed: $order"
        [ "$(tail -n 1 <<<"$order")" = 10.77.0.5 ] || fail "seed $seed: $order"
    done
    # A connection after the failures puts it back first.
    outcome_line 10.77.0.5 OSSH connected 0 | psi_servers record -
    [ "$(psi_servers pick --seed 1 | entry_addresses | head -n 1)" = 10.77.0.5 ]

    cp "$STORE" "$LAB_DIR/before"
    printf 'not an outcome\n{"address":"10.77.0.1"}\n' >"$LAB_DIR/bad"
    run psi_servers record "$LAB_DIR/bad"
    assert_failure 1
    assert_output --partial "no valid outcome in the input; the store is unchanged"
    outcome_line 10.99.9.9 OSSH timeout 5 >"$LAB_DIR/unknown"
    run psi_servers record --json "$LAB_DIR/unknown"
    assert_success
    [ "$(jq -c .refused <<<"$output")" = '{"not in the store":1}' ]
    cmp "$STORE" "$LAB_DIR/before"
}

@test "a store that cannot be read is reported and never overwritten" {
    printf 'not a store' >"$STORE"
    "$TOOLS/make_entries.py" --count 2 >"$LAB_DIR/entries.txt"
    run psi_servers import "$LAB_DIR/entries.txt"
    assert_failure 1
    assert_output --partial "cannot be read"
    assert_output --partial "left untouched"
    [ "$(cat "$STORE")" = "not a store" ]
}

@test "fetch --resolver: the list's host is asked at that DNS server alone; none there is one line naming the host, and the store stays" {
    serve_package 3
    psi_servers fetch
    run psi_servers list --json
    local before=$output
    # Nothing listens on the lab router's port 53.
    run psi_servers fetch --force --url "https://lists.psi.test/server_list_compressed" --resolver "$LAB_ROUTER_IP4"
    assert_failure 1
    assert_output "psi-servers: error: cannot resolve lists.psi.test: no answer from the resolver $LAB_ROUTER_IP4"
    run psi_servers list --json
    assert_equal "$output" "$before"
    # A URL with an address needs no resolver; the store is fetched as ever.
    run psi_servers fetch --force --resolver "$LAB_ROUTER_IP4"
    assert_success
    run psi_servers fetch --resolver "$LAB_ROUTER_IP4" --proxy socks5h://127.0.0.1:1081
    assert_failure 2
    run psi_servers fetch --resolver resolver.example
    assert_failure 2
    assert_output --partial "--resolver resolver.example: not an IP address"
}

@test "help, version, usage errors" {
    run "$PSI_SERVERS" --version
    assert_output --regexp '^psi-servers [0-9]+\.[0-9]+\.[0-9]+$'
    run "$PSI_SERVERS" --help
    assert_output --partial "pick"
    run psi_servers import --source NOWHERE /dev/null
    assert_failure 2
    run psi_servers fetch --url https://198.51.100.10:1/x --ca-file /nonexistent
    assert_failure 2
}

@test "a store written by root in the tunnel user's directory stays the tunnel user's" {
    local directory="$LAB_DIR/state"
    chmod o+x "$LAB_DIR"
    install -d -m 750 -o psiphon-user -g psiphon-group "$directory"
    "$TOOLS/make_entries.py" --count 3 >"$LAB_DIR/entries.txt"
    psi_servers --store "$directory/servers" import "$LAB_DIR/entries.txt"
    run stat -c '%U %a' "$directory/servers" "$directory/servers.lock"
    assert_output $'psiphon-user 600\npsiphon-user 600'
    # Root works there as the directory's owner: a link planted there reads nothing of root's.
    install -d -m 750 -o psiphon-user -g psiphon-group "$LAB_DIR/planted"
    ln -s /etc/shadow "$LAB_DIR/planted/servers"
    run psi_servers --store "$LAB_DIR/planted/servers" list
    assert_failure
    assert_output --partial "Permission denied"
    # The tunnel user (as the refresh timer runs) can now use and change it.
    cp "$LAB_DIR/psi.conf" "$directory/psi.conf"
    chown psiphon-user "$directory/psi.conf"
    chmod 644 "$LAB_DIR/entries.txt"
    run lab_as_user psiphon-user "$PSI_SERVERS" --config "$directory/psi.conf" --store "$directory/servers" \
        import "$LAB_DIR/entries.txt"
    assert_success
    assert_output --partial "3 unchanged"
    chmod o-x "$LAB_DIR"
}

@test "a partial download is private and leaves no lock behind" {
    serve_package 400 cut-after:20000
    run psi_servers fetch
    assert_failure 1
    [ "$(stat -c %a "$LAB_DIR/remote_server_list.part")" = 600 ]
    [ "$(stat -c %a "$LAB_DIR/remote_server_list.part.etag")" = 600 ]
    run psi_servers fetch
    assert_success
    run ls "$LAB_DIR"
    refute_output --partial ".part"
}

@test "pick: unknown protocols are usage errors; --any-region overrides EgressRegion" {
    "$TOOLS/make_entries.py" --count 6 --regions CA,US >"$LAB_DIR/entries.txt"
    psi_servers import "$LAB_DIR/entries.txt"
    run psi_servers pick --protocol OSHH
    assert_failure 2
    assert_output --partial "--protocol OSHH is not a Psiphon tunnel protocol"
    jq '. + {"EgressRegion": "US"}' "$LAB_DIR/psi.conf" >"$LAB_DIR/us.conf"
    chmod 600 "$LAB_DIR/us.conf"
    [ "$(lab_client "$PSI_SERVERS" --config "$LAB_DIR/us.conf" --store "$STORE" pick | wc -l)" -eq 3 ]
    [ "$(lab_client "$PSI_SERVERS" --config "$LAB_DIR/us.conf" --store "$STORE" pick --any-region | wc -l)" -eq 6 ]
}

@test "fetch --proxy goes through a SOCKS5 proxy (as through the tunnel) and names the host there" {
    serve_package 7
    # The client loses its direct route; only the proxy on the router can reach inet.
    lab_client ip route del default
    lab__spawn "$LAB_ROUTER" socks /usr/bin/python3 "$TOOLS/socks5_server.py" --bind "$LAB_ROUTER_IP4" --port 1081
    lab__wait_for 5 grep -q listening "$LAB_DIR/socks.out"
    run psi_servers fetch --timeout 3
    assert_failure 1
    run psi_servers fetch --proxy "socks5h://$LAB_ROUTER_IP4:1081"
    assert_success
    assert_output --partial "7 added"
    grep -q "^connect $LAB_INET_IP4 443$" "$LAB_DIR/socks.out"
}
