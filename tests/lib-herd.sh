# tests/lib-herd.sh: sourced (after lib.sh, setup_root) by
# tests/integration/herd.sh and bench/herd.
#
# herd_homes N: users h001..hN (uid 5001...) in this namespace's
# /etc/passwd and a 16 MiB home each in $T/srv (homeport mkhome), for
# tests/herd.py.
herd_homes() {
    local n=$1 i specs=()
    for i in $(seq -f %03g 1 "$n"); do specs+=("h$i:$((5000 + 10#$i))"); done
    add_users "${specs[@]}" || return 1
    mkdir -p "$T/srv"
    cat >> "$CONF" <<C
[server]
image_dir = $T/srv
C
    for i in $(seq -f %03g 1 "$n"); do
        timeout 60 "$HOMEPORT" -c "$CONF" mkhome "h$i" --size 16M > /dev/null 2>> "$T/mkhome.log" || return 1
    done
}

# herd_run N ARGS…: tests/herd.py on $T with N agents, ARGS passed on;
# the summary in $T/herd.out, the figures in $T/herd.json, exit in $rc.
herd_run() {
    local n=$1
    shift
    rc=0
    HOMEPORT=$HOMEPORT timeout -k 10 "${HERD_TIMEOUT:-900}" python3 "$TOP/tests/herd.py" "$T" "$n" \
        --json "$T/herd.json" "$@" > "$T/herd.out" 2> "$T/herd.err" || rc=$?
}
