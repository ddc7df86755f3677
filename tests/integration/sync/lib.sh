# tests/integration/sync/lib.sh: sourced by the tests of homeport sync's
# config-free form (--local/--remote/--state): a three-way sync of two
# directory trees with a state database, tested against its command-line
# contract (actions, summary, exit status).  Each test makes a fresh pair
# of trees ($L, $R, database $DB) and checks both trees and the database:
# "converged" means that a following pass with no change exits 0, prints
# only the summary with no action, counts every entry in step, and leaves
# both trees and the database's entries exactly as they were.
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=../../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib.sh"
enter_namespace "$@"
setup_root

HOST=testbox
export TZ=UTC # printf %()T below
STAMP_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{6}$'

# ---------------------------------------------------------------- helpers

# pair NAME: a fresh pair of trees $L, $R and a database path $DB (absent).
pair() {
    P=$T/$1
    L=$P/L R=$P/R DB=$P/db
    mkdir -p "$L" "$R"
    diag "--- $1"
}

# sync_pass ARGS…: one pass over $L/$R/$DB; stdout $T/out, stderr $T/err, $rc.
sync_pass() {
    rc=0
    timeout "${SYNC_TIMEOUT:-60}" "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" \
        --host "$HOST" "$@" > "$T/out" 2> "$T/err" || rc=$?
}

# pass_ok DESC ARGS…: a pass that must exit 0.
pass_ok() {
    local d=$1; shift
    sync_pass "$@"
    expect_rc 0 "$d"
}

# (The helpers avoid forks where they can: forks are slow on small VMs and
# the test has to stay under a minute.)

# put FILE CONTENT [MTIME]: write a file (creating its directories).
put() {
    [ -d "${1%/*}" ] || mkdir -p "${1%/*}"
    printf '%s\n' "$2" > "$1"
    [ $# -lt 3 ] || touch -d "@$3" "$1"
}

# has CONTENT FILE: FILE is a regular file (not a link) holding CONTENT
# (as put wrote it).
has() {
    local got=
    [ -f "$2" ] && [ ! -L "$2" ] || return 1
    IFS= read -r -d '' got < "$2"
    [ "$got" = "$1"$'\n' ]
}

# both CONTENT REL DESC: $L/REL and $R/REL both hold CONTENT.
both_have() { has "$1" "$L/$2" && has "$1" "$R/$2"; }
both() { check "$3" both_have "$1" "$2"; }

# gone REL DESC: neither side has REL (not even as a dangling link).
absent() { ! [ -e "$1" ] && ! [ -L "$1" ]; }
neither_has() { absent "$L/$1" && absent "$R/$1"; }
gone() { check "$2" neither_has "$1"; }

# has_line FILE LINE DESC / no_line: LINE is (not) a whole line of FILE.
has_line() {
    if grep -qxF -- "$2" "$1"; then ok "$3"; else not_ok "$3"; diag "no line '$2' in $1:"; sed 's/^/#   /' "$1"; fi
}
no_line() {
    if ! grep -qxF -- "$2" "$1"; then ok "$3"; else not_ok "$3"; diag "unexpected line '$2' in $1"; fi
}

# summary_is DESC TO_R TO_L DEL_L DEL_R CONFLICTS SPECIAL ERRORS [PREFIX]
summary_is() {
    local pre=${9:-sync}
    contains "$T/out" "^$pre: $2 to remote, $3 to local, $4 deleted locally, $5 deleted remotely, $6 conflicts, $7 special, $8 errors, [0-9]+ in step$" "$1"
}

# in_trash ROOT REL [CONTENT]: REL is in some ROOT/.homeport-trash/<stamp>/.
in_trash() {
    local f
    for f in "$1"/.homeport-trash/*/"$2"; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        [ $# -lt 3 ] || has "$3" "$f" || continue
        return 0
    done
    return 1
}
# stamps_ok ROOT: every folder of the trash is named YYYY-MM-DD_HHMMSS.
stamps_ok() {
    local s
    [ -d "$1/.homeport-trash" ] || return 1
    for s in "$1"/.homeport-trash/*; do [[ $(basename "$s") =~ $STAMP_RE ]] || return 1; done
}

# manifest ROOT MODE [FIND-PREDICATES…]: every entry of ROOT, NUL-terminated
# records in C order, then (sync) the SHA-256 of every file.  MODE sync: what the
# sync must make equal: types, modes, file sizes and mtimes (whole seconds),
# link targets, contents; not the root's .homeport-trash, temp files,
# special files, directories' mtimes, nor what the predicates match (e.g.
# -path ./Trash -o -name '*.tmp').  MODE full: every entry with its inode,
# size, mtime and ctime in ns (no contents), to prove that nothing was
# touched: any write, chmod or rename moves a ctime.
manifest() {
    local root=$1 mode=$2; shift 2
    local prune=(-path ./.homeport-trash -o -name '*.homeport-tmp')
    [ $# -eq 0 ] || prune+=(-o "$@")
    (
        cd "$root" || exit 1
        if [ "$mode" = full ]; then
            find . -mindepth 1 -printf '%P | %y %m %s %i %T@ %C@ %l\0' | sort -z
        else
            find . -mindepth 1 \( "${prune[@]}" \) -prune -o \( -type d -printf '%P | d %m\0' \) \
                -o \( -type f -printf '%P | f %m %s %Ts\0' \) -o \( -type l -printf '%P | l %l\0' \) | sort -z
            find . -mindepth 1 \( "${prune[@]}" \) -prune -o -type f -print0 | sort -z | xargs -0 -r sha256sum --
        fi
    )
}
# entries ROOT [FIND-PREDICATES…]: how many entries the sync sees in ROOT.
entries() {
    local root=$1; shift
    local prune=(-path ./.homeport-trash -o -name '*.homeport-tmp')
    [ $# -eq 0 ] || prune+=(-o "$@")
    (cd "$root" && find . -mindepth 1 \( "${prune[@]}" \) -prune -o \( -type d -o -type f -o -type l \) -printf .) | wc -c
}
# show_diff A B PREFIX: the differing records, one a line.
show_diff() { diff <(tr '\0' '\n' < "$1") <(tr '\0' '\n' < "$2") | sed "s/^/#   $3/" | head -30; }

# same DESC [FIND-PREDICATES…]: both trees hold the same entries (types,
# modes, contents, file mtimes, link targets).
same() {
    local d=$1; shift
    manifest "$L" sync "$@" > "$T/man.L"
    manifest "$R" sync "$@" > "$T/man.R"
    if cmp -s "$T/man.L" "$T/man.R" && [ -s "$T/man.L" ]; then ok "$d"; else
        not_ok "$d"
        show_diff "$T/man.L" "$T/man.R" ""
    fi
}

# snap_trees FILE: every entry of both trees (trash and temp files
# included) with its type, mode, size, inode, mtime and ctime in ns: any
# write, chmod or rename shows (a ctime moves).
snap_trees() { find "$L" "$R" -printf '%p | %y %m %s %i %T@ %C@ %l\0' | sort -z > "$1"; }
# same_snap DESC: nothing changed since snap_trees $T/snap.
same_snap() {
    snap_trees "$T/snap2"
    if cmp -s "$T/snap" "$T/snap2"; then ok "$1"; else not_ok "$1"; show_diff "$T/snap" "$T/snap2" ""; fi
}
# snap_all: the trees and a copy of the database.
snap_all() {
    snap_trees "$T/snap"
    rm -f "$T/snap.db"
    [ ! -f "$DB" ] || cp "$DB" "$T/snap.db"
}
# untouched DESC [listings]: nothing changed since snap_all (trees and
# database).  With "listings", the database's entries must be the same but
# directory listings may have been recorded (a pass records those of the
# directories that became old enough since: see listings below).
untouched() {
    same_snap "$1: trees untouched"
    if [ -f "$T/snap.db" ] && cmp -s "$T/snap.db" "$DB"; then
        ok "$1: database byte-identical"
    elif [ -f "$T/snap.db" ] && [ "${2:-}" = listings ]; then
        check "$1: database entries identical (listings recorded)" \
            cmp -s <(python3 "$TOP/tests/syncdb.py" "$T/snap.db") <(python3 "$TOP/tests/syncdb.py" "$DB")
    elif [ -f "$T/snap.db" ]; then
        not_ok "$1: database byte-identical"
    else
        check "$1: still no database" test ! -e "$DB"
    fi
}

# converged DESC [ARGS…]: the database exists, and a pass with no change in
# between exits 0, prints only the summary with no action (and one
# `special` line per special file, $NSPECIAL of them), counts every entry
# of the trees as in step (unless NOCOUNT is set), and touches nothing, the
# database included.
converged() {
    local d=$1 nspec=${NSPECIAL:-0} n want; shift
    check "$d: database exists" test -s "$DB"
    snap_all
    sync_pass "$@"
    n=$(grep -vc '^special ' "$T/out")
    if [ "$rc" = 0 ] && [ "$n" = 1 ] && [ "$(grep -c '^special ' "$T/out")" = "$nspec" ] &&
        grep -qE "^sync: 0 to remote, 0 to local, 0 deleted locally, 0 deleted remotely, 0 conflicts, $nspec special, 0 errors, [0-9]+ in step$" "$T/out"; then
        ok "$d: converged (a pass with no change does nothing)"
    else
        not_ok "$d: converged (a pass with no change does nothing): exit $rc"
        show_out
    fi
    if [ -z "${NOCOUNT:-}" ]; then
        want=$(entries "$L")
        contains "$T/out" " $want in step$" "$d: all $want entries in step"
    fi
    untouched "$d: the idle pass" listings
}

# conflict_copy PATH WHO T0 T1 [HOSTNAME]: the output has "conflict PATH: WHO
# keeps the name, the other is NEWNAME" with NEWNAME the spec's conflict name
# (host, a UTC time between T0 and T1, " N" when taken, last extension);
# sets CC to the loser's path relative to the roots ("" if not found).
conflict_copy() {
    local path=$1 who=$2 t0=$3 t1=$4 host=${5:-$HOST} line newname dir base stem ext when seq
    CC=
    dir=$(dirname "$path") base=$(basename "$path")
    line=$(grep -F -- "conflict $path: " "$T/out" | head -1)
    newname=${line#"conflict $path: $who keeps the name, the other is "}
    if [ -z "$line" ] || [ "$newname" = "$line" ]; then
        not_ok "conflict $path: $who keeps the name"; show_out; return
    fi
    ok "conflict $path: $who keeps the name"
    # NEWNAME: the spec does not say whether it is the final name or the path;
    # take either
    [ "$dir" != . ] && [ "${newname#"$dir/"}" != "$newname" ] && newname=${newname#"$dir/"}
    stem=$base ext=
    if [[ $base == ?*.* ]] && [[ $base != *. ]]; then
        stem=${base%.*} ext=.${base##*.}
    fi
    if [[ $newname =~ \(conflict\ ${host}\ ([0-9]{4}-[0-9]{2}-[0-9]{2})\ ([0-9]{2})([0-9]{2})([0-9]{2})(\ [0-9]+)?\) ]]; then
        when=$(date -u -d "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}:${BASH_REMATCH[3]}:${BASH_REMATCH[4]}" +%s)
        seq=${BASH_REMATCH[5]}
        check "conflict name for $path is '$stem (conflict $host DATE TIME${seq})$ext'" \
            test "$newname" = "$stem (conflict $host ${BASH_REMATCH[1]} ${BASH_REMATCH[2]}${BASH_REMATCH[3]}${BASH_REMATCH[4]}$seq)$ext"
        check "conflict time of $path is the UTC time of the pass" test "$when" -ge "$t0" -a "$when" -le "$t1"
    else
        not_ok "conflict name for $path: '$newname'"
    fi
    if [ "$dir" = . ]; then CC=$newname; else CC=$dir/$newname; fi
    CONFLICT_SEQ=${seq:-}
}

now=$(date +%s)
