#!/usr/bin/env bash
# homeport sync, the config-free form (--local/--remote/--state): a
# three-way sync of two directory trees with a state database, tested
# against its command-line contract (actions, summary, exit status).
# Scenarios, each on a fresh pair of trees: usage errors; create, modify,
# delete on each side; conflicts; modify vs delete; renames; type changes;
# a deep tree; odd names; symlinks; permissions and mtimes; special files;
# a pass killed -9 while copying; a missing and a corrupt database; the
# mass-delete guard; trash purge; a trash that cannot be used; exclusions
# (FILE and FILE.local); --dry-run; a path that cannot be written; a pass
# as the owner instead of root; the maildir story of seed 003; two
# machines sharing one remote.  Every scenario checks both trees and the
# database: "converged" means that a following pass with no change exits 0,
# prints only the summary with no action, counts every entry in step, and
# leaves both trees and the database's entries exactly as they were.
# Directory listings (the names a pass need not read again): recorded,
# trusted, and distrusted after each kind of change.
# shellcheck source-path=SCRIPTDIR
# shellcheck disable=SC2016 # bash -c '...' _ ARGS: expanded by that bash
# shellcheck source=../lib.sh
source "$(dirname "$0")/../lib.sh"
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

# ---------------------------------------------------------------- usage
pair usage
put "$L/a" a
for args in "--local $L --remote $R" "--local $L --state $DB" "--local $T/nope --remote $R --state $DB" \
    "--local $L --remote $T/nope --state $DB" "--local $L --remote $R --state $DB --frobnicate" \
    "--local $L --remote $R --state $DB --max-delete-percent lots"; do
    rc=0
    # shellcheck disable=SC2086 # the words are the arguments
    timeout 60 "$HOMEPORT" sync $args > "$T/out" 2> "$T/err" || rc=$?
    expect_rc 2 "sync ${args//$T/\$T}"
done
check "usage errors: nothing copied, no database" bash -c '[ -z "$(ls -A "$1")" ] && [ ! -e "$2" ]' _ "$R" "$DB"
mkdir "$P/dbdir"
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$P/dbdir" > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "a database that is a directory is unusable"
check "an unusable database: nothing done" test -z "$(ls -A "$R")"
rc=0
timeout 60 "$HOMEPORT" sync --help > "$T/out" 2> "$T/err" || rc=$?
expect_rc 0 "sync --help"
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --exclude "$P/no-such-list" > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "a missing exclusion list (nor its .local): a configuration error"
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$P/no-such-dir/db" > "$T/out" 2> "$T/err" || rc=$?
expect_rc 2 "a database in a missing directory is unusable"
check "still nothing done" test -z "$(ls -A "$R")"

# ---------------------------------------------------------------- create/modify/delete
pair basic
put "$L/a.txt" "local a"
put "$L/d/b.txt" "local b"
mkdir -p "$L/e" "$L/sub/.homeport-trash"
put "$L/sub/.homeport-trash/x" "not the real trash: synced"
put "$R/r.txt" "remote r"
put "$R/rd/x/y.txt" "remote y"
pass_ok "first pass (no database)"
has_line "$T/out" "to-remote a.txt" "to-remote a.txt"
has_line "$T/out" "to-remote d" "to-remote d (directories count)"
has_line "$T/out" "to-remote d/b.txt" "to-remote d/b.txt"
has_line "$T/out" "to-remote e" "to-remote e (an empty directory)"
has_line "$T/out" "to-local rd/x/y.txt" "to-local rd/x/y.txt"
summary_is "first pass summary" 7 4 0 0 0 0 0
check "the database is created" test -s "$DB"
both "local a" a.txt "a.txt on both sides"
both "remote y" rd/x/y.txt "rd/x/y.txt on both sides"
both "not the real trash: synced" sub/.homeport-trash/x "a .homeport-trash below the root is synced"
check "empty directory copied" test -d "$R/e"
same "basic: trees equal after the first pass"
converged "basic, first pass"

put "$L/a.txt" "local a, modified"
put "$R/r.txt" "remote r, modified"
put "$L/n1" "new on local"
put "$R/n2" "new on remote"
pass_ok "modify and create on each side"
has_line "$T/out" "to-remote a.txt" "modified a.txt to remote"
has_line "$T/out" "to-local r.txt" "modified r.txt to local"
has_line "$T/out" "to-remote n1" "new n1 to remote"
has_line "$T/out" "to-local n2" "new n2 to local"
summary_is "modify pass summary" 2 2 0 0 0 0 0
both "local a, modified" a.txt "a.txt modified on both"
both "remote r, modified" r.txt "r.txt modified on both"
both "new on local" n1 "n1 on both"
both "new on remote" n2 "n2 on both"
same "basic: trees equal after modifications"
converged "basic, modifications"

rm "$L/d/b.txt"
rm -r "$R/rd"
pass_ok "delete on each side"
has_line "$T/out" "delete-remote d/b.txt" "delete-remote d/b.txt"
has_line "$T/out" "delete-local rd/x/y.txt" "delete-local rd/x/y.txt"
has_line "$T/out" "delete-local rd" "delete-local rd (a directory)"
summary_is "delete pass summary (directories count)" 0 0 3 1 0 0 0
gone d/b.txt "d/b.txt gone from both"
gone rd "rd gone from both"
check "d kept (only its file was deleted)" test -d "$R/d"
check "remote's deleted file is in the remote trash" in_trash "$R" d/b.txt "local b"
check "local's deleted tree is in the local trash" in_trash "$L" rd/x/y.txt "remote y"
check "trash folders are named YYYY-MM-DD_HHMMSS (local)" stamps_ok "$L"
check "trash folders are named YYYY-MM-DD_HHMMSS (remote)" stamps_ok "$R"
not_in_trash() { ! in_trash "$@"; }
check "the trash is not synced (local's trash has no d/b.txt)" not_in_trash "$L" d/b.txt
same "basic: trees equal after deletions"
converged "basic, deletions"

# changes that size and mtime alone do not show
put "$L/gone-both" x
put "$R/gone-both" x
pass_ok "basic: a file new on both sides, the same"
rm "$L/gone-both" "$R/gone-both"
put "$R/r.txt" "remote R, modified" # the same length, a later mtime
touch -r "$L/n1" "$T/n1.time"
put "$L/n1" "NEW ON LOCAL" # the same length, and the mtime put back
touch -r "$T/n1.time" "$L/n1"
pass_ok "basic: same-size rewrites; a file deleted on both sides"
has_line "$T/out" "to-local r.txt" "a same-size rewrite on the remote is a change"
has_line "$T/out" "to-remote n1" "a same-size local rewrite with its mtime put back is a change"
summary_is "nothing else done (deleted on both sides: no action)" 1 1 0 0 0 0 0
both "remote R, modified" r.txt "r.txt rewritten on both sides"
both "NEW ON LOCAL" n1 "n1 rewritten on both sides"
gone gone-both "deleted on both sides"
same "basic: trees equal after subtle changes"
converged "basic, subtle changes"

# ---------------------------------------------------------------- conflicts
pair conflict
for f in c.txt .bashrc tie.txt x sub/n.tar.gz p.txt same.txt keep1 keep2 keep3; do put "$L/$f" "base $f"; done
# every conflict name p.txt could get in the next seconds is taken: the
# conflict must get " 2"
t=$((now - 2))
while [ "$t" -le $((now + 40)) ]; do
    printf -v stamp '%(%Y-%m-%d %H%M%S)T' "$t"
    : > "$L/p (conflict $HOST $stamp).txt"
    t=$((t + 1))
done
long=
for i in $(seq 120); do long+=ü; done
long+=x.txt # 245 bytes: its conflict name has to be cut
put "$L/$long" "base long"
pass_ok "conflict: first pass"
same "conflict: trees equal before"
put "$L/c.txt" "local c" $((now - 100))
put "$R/c.txt" "remote c, later" $((now - 50))
put "$L/.bashrc" "local rc, later" $((now - 10))
put "$R/.bashrc" "remote rc" $((now - 200))
put "$L/tie.txt" "local tie" $((now - 30))
put "$R/tie.txt" "remote tie!" $((now - 30))
rm "$L/x" && put "$L/x/inner" "inside local dir x"
put "$R/x" "remote x, much later" $((now + 1000))
put "$L/sub/n.tar.gz" "local tgz, later" $((now - 1))
put "$R/sub/n.tar.gz" "remote tgz" $((now - 500))
put "$L/p.txt" "local p" $((now - 100))
put "$R/p.txt" "remote p" $((now - 50))
put "$L/same.txt" "the same change"
put "$R/same.txt" "the same change"
put "$L/$long" "long, local" $((now - 100))
put "$R/$long" "long, remote, later" $((now - 50))
put "$L/fresh.txt" "fresh on local" $((now - 300))
put "$R/fresh.txt" "fresh on remote, later" $((now - 200))
mkdir -p "$L/both-new" "$R/both-new"
put "$L/both-new/from-local" fl
put "$R/both-new/from-remote" fr
t0=$(date +%s)
pass_ok "conflict pass"
t1=$(date +%s)
contains "$T/out" "^sync: .*, 8 conflicts, 0 special, 0 errors, " "conflict pass summary: 8 conflicts"
conflict_copy c.txt remote "$t0" "$t1"
both "remote c, later" c.txt "later remote version keeps c.txt on both sides"
both "local c" "$CC" "local version kept as '$CC' on both sides"
conflict_copy .bashrc local "$t0" "$t1"
both "local rc, later" .bashrc "later local version keeps .bashrc"
both "remote rc" "$CC" "remote .bashrc kept as '$CC' (no extension)"
conflict_copy tie.txt remote "$t0" "$t1"
both "remote tie!" tie.txt "a tie: the remote keeps the name"
both "local tie" "$CC" "a tie: local kept as the conflict copy"
conflict_copy x local "$t0" "$t1"
both "inside local dir x" x/inner "a directory wins against a later file"
both "remote x, much later" "$CC" "the file x kept as '$CC'"
conflict_copy sub/n.tar.gz local "$t0" "$t1"
both "local tgz, later" sub/n.tar.gz "sub/n.tar.gz: local keeps the name"
both "remote tgz" "$CC" "conflict copy in the same directory, last extension only: '$CC'"
conflict_copy p.txt remote "$t0" "$t1"
check "a taken conflict name gets ' 2'" test "${CONFLICT_SEQ:-}" = " 2"
both "local p" "$CC" "local p kept as '$CC'"
conflict_copy fresh.txt remote "$t0" "$t1"
both "fresh on remote, later" fresh.txt "new on both sides, different: the later remote keeps the name"
both "fresh on local" "$CC" "new on both sides: local kept as '$CC'"
both "the same change" same.txt "the same change on both sides: no conflict"
# the long name: the stem is cut (at a character) so that the name fits in
# 255 bytes, never the suffix
line=$(grep -F -- "conflict $long: remote keeps the name, the other is " "$T/out")
CC=${line##*, the other is }
if [ -n "$line" ] && [ "${#CC}" -le 255 ] && [ "${#CC}" -ge 240 ] && [[ $CC == üü*" (conflict $HOST "*").txt" ]] &&
    [ "${long#"${CC%% (conflict*}"}" != "$long" ] && printf '%s' "$CC" | iconv -f UTF-8 -t UTF-8 > /dev/null 2>&1; then
    ok "a 245-byte name: the conflict name is cut to ${#CC} bytes, valid UTF-8, suffix kept"
else
    not_ok "a 245-byte name: conflict name '$CC' (${#CC} bytes)"
fi
both "long, remote, later" "$long" "the long name: the remote keeps it"
both "long, local" "$CC" "the long name: local kept as the cut conflict name"
lacks "$T/out" "^conflict (same.txt|both-new)" "same change and two new directories are no conflict"
both fl both-new/from-local "two new directories merge (local's file)"
both fr both-new/from-remote "two new directories merge (remote's file)"
check "c.txt's loser keeps its mtime" test "$(stat -c %Y "$R/c (conflict"*").txt")" = $((now - 100))
same "conflict: trees equal after"
converged "conflicts"

# ---------------------------------------------------------------- modify vs delete
pair moddel
for f in m1 m2 dd/f dd/g dn/old k1 k2 k3 k4 k5 k6 k7 k8; do put "$L/$f" "base $f"; done
pass_ok "modify vs delete: first pass"
put "$L/m1" "m1 changed locally"
rm "$R/m1"
put "$R/m2" "m2 changed remotely"
rm "$L/m2"
rm -r "$L/dd" "$L/dn"
put "$R/dn/new" "new in a directory deleted locally"
put "$R/dd/f" "dd/f changed remotely"
pass_ok "modify vs delete pass"
has_line "$T/out" "to-remote m1" "local change wins over remote delete (to-remote m1)"
has_line "$T/out" "to-local m2" "remote change wins over local delete (to-local m2)"
both "m1 changed locally" m1 "m1 back on both sides"
both "m2 changed remotely" m2 "m2 back on both sides"
both "dd/f changed remotely" dd/f "a changed file inside a deleted directory comes back with its directory"
gone dd/g "the unchanged dd/g stays deleted"
both "new in a directory deleted locally" dn/new "a new file in a directory deleted on the other side comes back"
gone dn/old "the unchanged dn/old stays deleted"
no_line "$T/out" "delete-remote dd/f" "dd/f not deleted"
lacks "$T/out" "^(delete-remote|delete-local) (m1|m2)$" "no deletion of m1/m2"
same "modify vs delete: trees equal"
converged "modify vs delete"

# ---------------------------------------------------------------- renames
pair rename
put "$L/docs/report.txt" "the report" 1500000000
put "$L/olddir/a" "a in olddir"
put "$L/olddir/sub/b" "b in olddir"
for f in k1 k2 k3 k4 k5 k6 k7 k8; do put "$L/$f" "$f"; done
pass_ok "rename: first pass"
mv "$L/docs/report.txt" "$L/docs/final.txt"
mv "$R/olddir" "$R/newdir"
pass_ok "rename pass"
has_line "$T/out" "delete-remote docs/report.txt" "old name deleted on the remote"
has_line "$T/out" "to-remote docs/final.txt" "new name copied to the remote"
has_line "$T/out" "to-local newdir/sub/b" "renamed directory's content copied to local"
has_line "$T/out" "delete-local olddir/sub/b" "old directory's content deleted locally"
gone docs/report.txt "docs/report.txt gone from both"
both "the report" docs/final.txt "docs/final.txt on both"
check "renamed file keeps its mtime on the remote" test "$(stat -c %Y "$R/docs/final.txt")" = 1500000000
gone olddir "olddir gone from both"
both "b in olddir" newdir/sub/b "newdir/sub/b on both"
check "old name in the remote trash" in_trash "$R" docs/report.txt "the report"
check "old directory in the local trash" in_trash "$L" olddir/sub/b "b in olddir"
same "rename: trees equal"
converged "renames"

# ---------------------------------------------------------------- type changes
pair types
for s in t u; do
    put "$L/${s}1" "file ${s}1"
    put "$L/${s}2/in" "in ${s}2"
    put "$L/${s}3" "file ${s}3"
    ln -s "${s}3" "$L/${s}4"
done
for f in k1 k2 k3 k4 k5 k6 k7 k8; do put "$L/$f" "$f"; done
pass_ok "types: first pass"
# local: t1 file->dir, t2 dir->file, t3 file->symlink, t4 symlink->file
rm "$L/t1" && put "$L/t1/x" "t1 is a dir now"
rm -r "$L/t2" && put "$L/t2" "t2 is a file now"
rm "$L/t3" && ln -s "target of t3" "$L/t3"
rm "$L/t4" && put "$L/t4" "t4 is a file now"
# remote: the same on u*
rm "$R/u1" && put "$R/u1/x" "u1 is a dir now"
rm -r "$R/u2" && put "$R/u2" "u2 is a file now"
rm "$R/u3" && ln -s "target of u3" "$R/u3"
rm "$R/u4" && put "$R/u4" "u4 is a file now"
pass_ok "type change pass"
lacks "$T/out" "^conflict " "type changes on one side are no conflict"
both "t1 is a dir now" t1/x "local file->dir reaches the remote"
both "t2 is a file now" t2 "local dir->file reaches the remote"
check "local file->symlink reaches the remote" test "$(readlink "$R/t3")" = "target of t3"
both "t4 is a file now" t4 "local symlink->file reaches the remote"
both "u1 is a dir now" u1/x "remote file->dir reaches local"
both "u2 is a file now" u2 "remote dir->file reaches local"
check "remote file->symlink reaches local" test "$(readlink "$L/u3")" = "target of u3"
both "u4 is a file now" u4 "remote symlink->file reaches local"
check "the replaced directory's file is in the remote trash" in_trash "$R" t2/in "in t2"
check "the replaced directory's file is in the local trash" in_trash "$L" u2/in "in u2"
same "types: trees equal"
converged "type changes"

# ---------------------------------------------------------------- deep tree
pair deep
deep=
for i in $(seq -w 1 30); do deep=${deep:+$deep/}level$i; done
put "$L/$deep/leaf.txt" "deep leaf"
for i in $(seq -w 1 40); do put "$L/filler/f$i" "f$i"; done
pass_ok "deep: first pass"
both "deep leaf" "$deep/leaf.txt" "a file 30 levels down reaches the remote"
put "$R/$deep/leaf.txt" "deep leaf, changed remotely"
mkdir "$R/$deep/level31"
pass_ok "deep: remote change"
both "deep leaf, changed remotely" "$deep/leaf.txt" "the change 30 levels down reaches local"
check "a new 31st level reaches local" test -d "$L/$deep/level31"
same "deep: trees equal"
converged "deep tree"
rm -r "$L/level01"
pass_ok "deep: the whole tree deleted locally"
has_line "$T/out" "delete-remote $deep/leaf.txt" "deepest file deleted on the remote"
has_line "$T/out" "delete-remote level01" "top directory deleted on the remote"
summary_is "deep delete: 32 entries" 0 0 0 32 0 0 0
gone level01 "deep tree gone from both"
check "deep tree in the remote trash" in_trash "$R" "$deep/leaf.txt" "deep leaf, changed remotely"
same "deep: trees equal after the delete"
converged "deep tree deleted"

# ---------------------------------------------------------------- odd names
pair odd
odd=("with space" $'new\nline' "-leading-dash" "--" "ünïcödé 日本.txt" "star*" "star" "q?mark" "qXmark"
    "[br]acket" "b" 'back\slash' "trail " $'tab\there' "quote'\"" "a:b,c" "#hash" "~tilde" "%s%n" "dir [x]*"
    $'\xff\xfe not UTF-8')
for n in "${odd[@]}"; do put "$L/$n" "c:$n"; done
put "$L/dir ?*[/in ?side" "nested odd"
put "$L/-/--x" "dash dir"
pass_ok "odd names: first pass"
for n in "${odd[@]}"; do printf -v q %q "$n"; both "c:$n" "$n" "odd name $q reaches the remote"; done
both "nested odd" "dir ?*[/in ?side" "odd directory and file name"
both "dash dir" "-/--x" "a directory named '-'"
has_line "$T/out" "to-remote -leading-dash" "a leading dash is printed as is"
has_line "$T/out" "to-remote star*" "a '*' is printed as is"
# the spec does not say how a newline in a name is printed; it must not
# break the one-line-per-action output
lacks "$T/out" "^[^ ]*$|^(line|here)$" "a newline or tab in a name does not split a line"
check "every output line is an action or the summary" bash -c '! grep -vE "^(to-remote|to-local|delete-local|delete-remote|conflict|special|error|guard) |^sync: " "$1"' _ "$T/out"
same "odd names: trees equal"
converged "odd names"
for n in "with space" "[br]acket" 'back\slash' $'new\nline' "ünïcödé 日本.txt"; do put "$R/$n" "changed:$n"; done
rm "$R/star*" "$R/q?mark" "$R/-leading-dash"
rm "$L/trail "
pass_ok "odd names: changes on both sides"
for n in "with space" "[br]acket" 'back\slash' $'new\nline' "ünïcödé 日本.txt"; do
    printf -v q %q "$n"
    both "changed:$n" "$n" "odd name $q changed on the remote reaches local"
done
for n in "star*" "q?mark" "-leading-dash" "trail "; do gone "$n" "odd name '$n' deleted on both"; done
both "c:star" star "'star' survives the deletion of 'star*'"
both "c:qXmark" qXmark "'qXmark' survives the deletion of 'q?mark'"
both "c:b" b "'b' survives the changes of '[br]acket'"
check "'star*' in the local trash" in_trash "$L" "star*" "c:star*"
same "odd names: trees equal after changes"
converged "odd names, changed"

# ---------------------------------------------------------------- symlinks
pair links
mkdir -p "$T/outside/bigdir" "$T/outside/victim"
put "$T/outside/bigdir/secret.txt" "outside content"
put "$T/outside/file.txt" "outside file"
put "$L/sub/target.txt" "link target"
ln -s "$T/outside/file.txt" "$L/abs"
ln -s sub/target.txt "$L/rel"
ln -s ../../somewhere "$L/up"
ln -s no/such/thing "$L/dangling"
ln -s "$T/outside/bigdir" "$L/dirlink"
ln -s selfloop "$L/selfloop"
ln -s .. "$L/sub/back"
put "$L/esc/pwn" "must not land outside"
ln -s "$T/outside/victim" "$R/esc"
t0=$(date +%s)
pass_ok "symlinks: first pass"
t1=$(date +%s)
for l in abs rel up dangling dirlink selfloop sub/back; do
    check "link $l copied as a link with the same target" \
        bash -c '[ -L "$1" ] && [ "$(readlink "$1")" = "$(readlink "$2")" ]' _ "$R/$l" "$L/$l"
done
check "the linked directory's content is not copied" test -z "$(find "$R" -name secret.txt)"
check "nothing written into the linked directory" test "$(ls -A "$T/outside/bigdir")" = secret.txt
conflict_copy esc local "$t0" "$t1"
check "the remote link esc is kept as '$CC' (a link)" bash -c '[ -L "$1" ] && [ -L "$2" ] &&
    [ "$(readlink "$1")" = "$3" ] && [ "$(readlink "$2")" = "$3" ]' _ "$L/$CC" "$R/$CC" "$T/outside/victim"
both "must not land outside" esc/pwn "local dir esc is a real dir on the remote"
check "the remote's esc is a directory, not the link" bash -c '[ -d "$1" ] && [ ! -L "$1" ]' _ "$R/esc"
check "nothing written through the remote's link" test -z "$(ls -A "$T/outside/victim")"
same "symlinks: trees equal"
converged "symlinks"
ln -sfn sub/other "$L/rel"
ln -sfn "elsewhere/now" "$R/dangling"
rm "$L/dirlink"
pass_ok "symlinks: changes"
has_line "$T/out" "to-remote rel" "a changed link target to remote"
has_line "$T/out" "to-local dangling" "a changed link target to local"
has_line "$T/out" "delete-remote dirlink" "a deleted link deleted on the remote"
check "new target on the remote" test "$(readlink "$R/rel")" = sub/other
check "new target locally" test "$(readlink "$L/dangling")" = elsewhere/now
gone dirlink "dirlink gone from both"
check "deleting the link kept the linked directory" has "outside content" "$T/outside/bigdir/secret.txt"
check "the trash holds the link, not the directory" bash -c 'for f in "$1"/.homeport-trash/*/dirlink; do [ -L "$f" ] && exit 0; done; exit 1' _ "$R"
same "symlinks: trees equal after changes"
converged "symlinks, changed"

# ---------------------------------------------------------------- permissions and mtimes
pair perms
put "$L/f600" "secret" 1000000000
chmod 600 "$L/f600"
put "$L/f755" "#!/bin/sh" 1100000000
chmod 755 "$L/f755"
put "$L/f444" "read only" 1200000000
chmod 444 "$L/f444"
put "$L/f000" "no bits" 1250000000
chmod 000 "$L/f000"
put "$L/d700/in" "in d700" 1300000000
chmod 700 "$L/d700"
mkdir "$L/dsg"
chmod 2775 "$L/dsg"
put "$L/dsg/f" "in setgid" 1400000000
mkdir "$L/dsg/sub"
chmod 00755 "$L/dsg/sub" # (GNU chmod keeps a directory's setgid for 0755)
touch -d @1350000000 "$L/d700"
put "$R/r640" "remote 640" 1450000000
chmod 640 "$R/r640"
umask 077
pass_ok "permissions: first pass (umask 077)"
for e in f600 f755 f444 f000 d700/in dsg/f; do
    check "remote $e: mode and mtime preserved ($(stat -c '%a %Y' "$L/$e"))" \
        test "$(stat -c '%a %Y' "$R/$e")" = "$(stat -c '%a %Y' "$L/$e")"
done
for e in d700 dsg dsg/sub; do
    check "remote directory $e: mode preserved ($(stat -c %a "$L/$e"))" test "$(stat -c %a "$R/$e")" = "$(stat -c %a "$L/$e")"
done
# the spec: "mtimes ... are preserved", directories not set apart
check "remote directory d700: mtime preserved (1350000000)" test "$(stat -c %Y "$R/d700")" = 1350000000
check "local r640: mode and mtime preserved" test "$(stat -c '%a %Y' "$L/r640")" = "640 1450000000"
check "setgid dir stays 2775" test "$(stat -c %a "$R/dsg")" = 2775
check "a 0755 dir inside a setgid dir is 755, not setgid" test "$(stat -c %a "$R/dsg/sub")" = 755
check "f600 mtime is exact" test "$(stat -c %Y "$R/f600")" = 1000000000
same "perms: trees equal"
converged "permissions"
chmod 640 "$R/f600"
chmod 711 "$L/d700"
chmod 644 "$L/f444"
pass_ok "permissions: mode-only changes"
has_line "$T/out" "to-local f600" "a remote chmod is a change"
has_line "$T/out" "to-remote f444" "a local chmod of a file is a change"
has_line "$T/out" "to-remote d700" "a local chmod of a directory is a change"
check "f600 is 640 on both sides" test "$(stat -c %a "$L/f600") $(stat -c %a "$R/f600")" = "640 640"
check "d700 is 711 on both sides" test "$(stat -c %a "$L/d700") $(stat -c %a "$R/d700")" = "711 711"
check "f444 is 644 on both sides" test "$(stat -c %a "$L/f444") $(stat -c %a "$R/f444")" = "644 644"
check "f600's mtime unchanged by the chmod sync" test "$(stat -c %Y "$L/f600")" = 1000000000
put "$R/f444" "rewritten on the remote" 1500000000
chmod 444 "$R/f444"
pass_ok "permissions: a read-only file replaced"
check "read-only f444 replaced locally, mode 444, mtime kept" \
    test "$(stat -c '%a %Y' "$L/f444"):$(cat "$L/f444")" = "444 1500000000:rewritten on the remote"
umask 022
same "perms: trees equal after changes"
converged "permissions, changed"

# ---------------------------------------------------------------- special files
pair special
put "$L/plain" plain
mkfifo "$L/pipe" "$R/rpipe"
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$L/sock"
mknod "$L/null" c 1 3
SYNC_TIMEOUT=20 pass_ok "special files: first pass (no blocking on the fifo)"
has_line "$T/out" "special pipe (local): not synced" "fifo reported"
has_line "$T/out" "special sock (local): not synced" "socket reported"
has_line "$T/out" "special null (local): not synced" "device reported"
has_line "$T/out" "special rpipe (remote): not synced" "remote fifo reported"
summary_is "special summary" 1 0 0 0 0 4 0
check "nothing special copied to the remote" bash -c '! [ -e "$1/pipe" ] && ! [ -e "$1/sock" ] && ! [ -e "$1/null" ]' _ "$R"
check "nothing special copied to local" test ! -e "$L/rpipe"
check "the special files are left alone" bash -c '[ -p "$1/pipe" ] && [ -S "$1/sock" ] && [ -c "$1/null" ] && [ -p "$2/rpipe" ]' _ "$L" "$R"
both plain plain "the plain file beside them is synced"
same "special: trees equal (special files aside)"
SYNC_TIMEOUT=20 NSPECIAL=4 converged "special files (reported again)"

# ---------------------------------------------------------------- interrupted pass
pair intr
put "$L/big.bin" "old big"
put "$L/k" k
mkdir -p "$L/sub"
pass_ok "interrupt: first pass"
# big.bin replaces an old version, fresh.bin is new: kill -9 the pass as
# soon as one of their temp files shows (tried up to 3 times, in case a
# pass copies faster than it is watched)
seen=0
for attempt in 1 2 3; do
    cp "$R/big.bin" "$T/big.old"
    head -c 100M /dev/urandom > "$L/big.bin"
    head -c 50M /dev/urandom > "$L/fresh.bin"
    (exec "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --host "$HOST" > "$T/out" 2> "$T/err") &
    pid=$!
    track "$pid"
    SECONDS=0
    while [ "$SECONDS" -lt 20 ]; do
        if [ -e "$R/.big.bin.homeport-tmp" ] || [ -e "$R/.fresh.bin.homeport-tmp" ]; then seen=1; break; fi
        kill -0 "$pid" 2> /dev/null || break
    done
    kill -9 "$pid" 2> /dev/null
    wait "$pid" 2> /dev/null
    [ "$seen" = 0 ] || break
done
if [ "$seen" = 1 ]; then
    ok "a copy goes through .NAME.homeport-tmp in the destination directory (killed -9 while copying, try $attempt)"
else
    not_ok "no .big.bin.homeport-tmp nor .fresh.bin.homeport-tmp seen in 3 passes"
    show_out
fi
check "after the kill the remote has the old whole big.bin or the new whole one, never half" \
    bash -c 'cmp -s "$1" "$2" || cmp -s "$1" "$3"' _ "$R/big.bin" "$T/big.old" "$L/big.bin"
check "after the kill the remote has no fresh.bin or the whole one, never half" \
    bash -c '! [ -e "$1" ] || cmp -s "$1" "$2"' _ "$R/fresh.bin" "$L/fresh.bin"
check "local's new file untouched by the kill" test "$(stat -c %s "$L/big.bin")" = 104857600
# and a stale temp file from an older crash, on each side
put "$L/sub/.stale.homeport-tmp" "half a file"
put "$R/.other.homeport-tmp" "half another"
# and one that is a symlink out of the tree, where k's copy would be written
put "$T/outside/not-yours" "must stay"
ln -s "$T/outside/not-yours" "$R/.k.homeport-tmp"
put "$L/k" "k, changed"
pass_ok "interrupt: the resumed pass"
lacks "$T/out" "^conflict " "the resumed pass sees no conflict"
lacks "$T/out" "homeport-tmp" "temp files are never synced"
check "the resumed pass completes the copies" bash -c 'cmp -s "$1/big.bin" "$2/big.bin" && cmp -s "$1/fresh.bin" "$2/fresh.bin"' _ "$L" "$R"
check "no temp file left on either side" test -z "$(find "$L" "$R" -name '*.homeport-tmp')"
check "a temp name that is a symlink is not written through" has "must stay" "$T/outside/not-yours"
both "k, changed" k "k copied all the same"
same "interrupt: trees equal"
converged "interrupted pass"

# ---------------------------------------------------------------- missing database
pair nodb
for f in a b c d e f g; do put "$L/$f" "base $f"; done
pass_ok "missing db: first pass"
rm "$DB"
rm "$L/a"
rm "$R/g"
put "$L/b" "local b" $((now - 100))
put "$R/b" "remote b, later" $((now - 10))
t0=$(date +%s)
# without --host: the conflict name carries this machine's hostname
rc=0
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" > "$T/out" 2> "$T/err" || rc=$?
t1=$(date +%s)
expect_rc 0 "missing database: a union pass"
lacks "$T/out" "^delete-" "missing database: nothing deleted"
has_line "$T/out" "to-local a" "a deleted locally comes back"
has_line "$T/out" "to-remote g" "g deleted remotely comes back"
both "base a" a "a on both sides"
both "base g" g "g on both sides"
hn=$(hostname)
hn=${hn:0:64} hn=${hn//[^A-Za-z0-9._-]/_}
conflict_copy b remote "$t0" "$t1" "$hn"
both "remote b, later" b "b: the later remote version keeps the name"
both "local b" "$CC" "b: the local version kept as '$CC' (default host $hn)"
summary_is "union summary (identical files are in step)" 1 1 0 0 1 0 0
check "the database is written again" test -s "$DB"
same "missing db: trees equal"
converged "missing database"

# ---------------------------------------------------------------- corrupt database
pair corrupt
for f in a b c d e f g; do put "$L/$f" "base $f"; done
pass_ok "corrupt db: first pass"
# flip every bit of the byte in the middle
if [ -s "$DB" ]; then
    mid=$(($(stat -c %s "$DB") / 2))
    byte=$(od -An -tu1 -j "$mid" -N1 "$DB")
    printf -v byte '\\%03o' $((255 - byte))
    printf '%b' "$byte" | dd of="$DB" bs=1 seek="$mid" conv=notrunc status=none
fi
cp "$DB" "$T/corrupt.db"
rm "$L/a"
put "$L/b" "local b, later" $((now - 10))
put "$R/b" "remote b" $((now - 100))
t0=$(date +%s)
pass_ok "corrupt database: a union pass"
t1=$(date +%s)
check "the corrupt database is reported on stderr" test -s "$T/err"
contains "$T/err" "$DB" "the report names the database"
lacks "$T/out" "^delete-" "corrupt database: nothing deleted"
has_line "$T/out" "to-local a" "a deleted locally comes back"
both "base a" a "a on both sides"
conflict_copy b local "$t0" "$t1"
both "local b, later" b "b: the later local version keeps the name"
both "remote b" "$CC" "b: the remote version kept as '$CC'"
check "the corrupt database is replaced" bash -c '! cmp -s "$1" "$2"' _ "$T/corrupt.db" "$DB"
same "corrupt db: trees equal"
converged "corrupt database replaced"
check "the idle pass after the replacement reports nothing" test ! -s "$T/err"
rm "$L/c"
pass_ok "corrupt db: deletions work again"
has_line "$T/out" "delete-remote c" "delete-remote c"
gone c "c gone from both"
converged "corrupt database, after a deletion"
# a sound database of a newer format (version 2, its checksum right): not
# this homeport's to overwrite
head -c 8 "$DB" > "$T/v2.db"
printf '\x02' >> "$T/v2.db"
tail -c +10 "$DB" | head -c -32 >> "$T/v2.db"
sum=$(sha256sum < "$T/v2.db")
sum=${sum%% *}
esc=
for ((i = 0; i < 64; i += 2)); do esc+="\\x${sum:i:2}"; done
printf '%b' "$esc" >> "$T/v2.db"
cp "$T/v2.db" "$DB"
rm "$L/d"
sync_pass
expect_rc 2 "a database of a newer format: exit 2"
check "a newer database: nothing done" has "base d" "$R/d"
check "a newer database is left as it is" cmp -s "$T/v2.db" "$DB"

# ---------------------------------------------------------------- mass-delete guard
pair guard
for i in $(seq -w 1 40); do put "$L/f$i" "file $i"; done
pass_ok "guard: first pass, 40 files"
for i in $(seq -w 1 30); do rm "$L/f$i"; done
put "$L/new.txt" "new while guarded"
sync_pass
expect_rc 3 "30 of 40 deleted locally: the guard holds"
cp "$T/out" "$T/guard.out"
sync_pass --dry-run
expect_rc 3 "the dry run holds them back as well"
# (new.txt is in the database now: 41 entries)
has_line "$T/out" "guard remote: 30 of 41 entries would be deleted (more than 50%): not deleted; run with --allow-deletes to confirm" "the dry run prints the guard line"
cp "$T/guard.out" "$T/out"
has_line "$T/out" "guard remote: 30 of 40 entries would be deleted (more than 50%): not deleted; run with --allow-deletes to confirm" "guard line"
lacks "$T/out" "^delete-remote " "no remote deletion"
has_line "$T/out" "to-remote new.txt" "the rest of the pass is done"
both "new while guarded" new.txt "new.txt on both sides"
check "the 40 files still on the remote" test "$(find "$R" -maxdepth 1 -name 'f*' | wc -l)" = 40
check "nothing came back locally" test "$(find "$L" -maxdepth 1 -name 'f*' | wc -l)" = 10
sync_pass
expect_rc 3 "the deletions stay pending: the guard holds again"
contains "$T/out" "^guard remote: 30 of [0-9]+ entries would be deleted" "guard line again"
check "still no file came back locally" test "$(find "$L" -maxdepth 1 -name 'f*' | wc -l)" = 10
sync_pass --dry-run --allow-deletes
expect_rc 0 "--dry-run --allow-deletes"
check "dry run: still 40 on the remote" test "$(find "$R" -maxdepth 1 -name 'f*' | wc -l)" = 40
pass_ok "--allow-deletes" --allow-deletes
check "30 delete-remote lines" test "$(grep -c '^delete-remote f' "$T/out")" = 30
lacks "$T/out" "^guard " "no guard line"
check "10 files left on the remote" test "$(find "$R" -maxdepth 1 -name 'f*' | wc -l)" = 10
check "the 30 files in the remote trash" bash -c 'for i in $(seq -w 1 30); do for f in "$1"/.homeport-trash/*/f$i; do [ "$(cat "$f")" = "file $i" ] || exit 1; done; done' _ "$R"
check "one trash folder per pass" test "$(find "$R/.homeport-trash" -mindepth 1 -maxdepth 1 | wc -l)" = 1
same "guard: trees equal"
converged "guard, deletions allowed"
for i in $(seq -w 1 20); do put "$R/g$i" "g $i"; done
pass_ok "guard: 20 more files"
for i in $(seq -w 1 20); do rm "$R/g$i"; done
sync_pass
expect_rc 3 "20 of 31 deleted remotely: the guard holds on the local side"
has_line "$T/out" "guard local: 20 of 31 entries would be deleted (more than 50%): not deleted; run with --allow-deletes to confirm" "guard local line"
check "the 20 files still local" test "$(find "$L" -maxdepth 1 -name 'g*' | wc -l)" = 20
pass_ok "--max-delete-percent 70 lets 65% through" --max-delete-percent 70
check "20 delete-local lines" test "$(grep -c '^delete-local g' "$T/out")" = 20
check "the 20 files gone locally" test "$(find "$L" -maxdepth 1 -name 'g*' | wc -l)" = 0
check "and in the local trash" in_trash "$L" g07 "g 07"
same "guard: trees equal after the local deletions"
converged "guard, local side"
pair smalltree
for i in 1 2 3 4 5 6 7 8; do put "$L/s$i" "s$i"; done
pass_ok "small tree: first pass"
rm "$L"/s*
pass_ok "small tree: every entry deleted, not guarded"
summary_is "8 deleted remotely" 0 0 0 8 0 0 0
check "the remote is empty but for the trash" test "$(ls -A "$R")" = .homeport-trash
converged "small tree emptied"

# ---------------------------------------------------------------- trash purge
pair purge
put "$L/a" a
pass_ok "purge: first pass"
old=2001-01-01_000000
d40=$(date -u -d '-40 days' +%Y-%m-%d_%H%M%S)
d1=$(date -u -d '-1 day' +%Y-%m-%d_%H%M%S)
# (the folders' mtimes say the same as their names: the spec does not say
# which of the two "older than" reads)
for s in "$old" "$d40" "$d1"; do
    put "$L/.homeport-trash/$s/l-$s" x
    put "$R/.homeport-trash/$s/r-$s" x
    when=$(date -u -d "$(echo "$s" | sed -E 's/_(..)(..)(..)$/ \1:\2:\3/')" +%s)
    touch -d "@$when" "$L/.homeport-trash/$s" "$R/.homeport-trash/$s"
done
pass_ok "purge: --trash-days 60" --trash-days 60
check "an ancient local trash folder is purged" test ! -e "$L/.homeport-trash/$old"
check "an ancient remote trash folder is purged" test ! -e "$R/.homeport-trash/$old"
check "a 40-day-old folder is kept with --trash-days 60" test -e "$L/.homeport-trash/$d40/l-$d40" -a -e "$R/.homeport-trash/$d40/r-$d40"
pass_ok "purge: default trash-days (30)"
check "a 40-day-old folder is purged (local)" test ! -e "$L/.homeport-trash/$d40"
check "a 40-day-old folder is purged (remote)" test ! -e "$R/.homeport-trash/$d40"
check "a 1-day-old folder is kept" test -e "$L/.homeport-trash/$d1/l-$d1" -a -e "$R/.homeport-trash/$d1/r-$d1"
check "the trashes are not synced" test ! -e "$R/.homeport-trash/$d1/l-$d1" -a ! -e "$L/.homeport-trash/$d1/r-$d1"
same "purge: trees equal"
converged "trash purge"

# ---------------------------------------------------------------- a trash that cannot be used
# .homeport-trash at the root a symlink (the remote) or a file (local): it is
# never followed, so the deletions cannot be done: they are errors, stay
# pending, and the files do not come back
pair badtrash
for f in a b c d e f g h; do put "$L/$f" "base $f"; done
pass_ok "bad trash: first pass"
mkdir -p "$T/outside/trashlink/2001-01-01_000000"
put "$T/outside/trashlink/2001-01-01_000000/precious" precious
ln -s "$T/outside/trashlink" "$R/.homeport-trash"
put "$L/.homeport-trash" "a file, not a directory"
rm "$L/a" "$R/b"
sync_pass
expect_rc 1 "deletions without a usable trash: exit 1"
contains "$T/out" "^error a: .+" "error line for a (the remote's trash is a symlink)"
contains "$T/out" "^error b: .+" "error line for b (the local trash is a file)"
check "a still on the remote" has "base a" "$R/a"
check "b still local" has "base b" "$L/b"
check "nothing moved through the remote's trash link" test "$(find "$T/outside/trashlink" | wc -l)" = 3
check "no purge through the remote's trash link" has precious "$T/outside/trashlink/2001-01-01_000000/precious"
sync_pass
expect_rc 1 "the deletions stay pending (exit 1 again)"
no_line "$T/out" "to-local a" "the file deleted locally does not come back"
no_line "$T/out" "to-remote b" "the file deleted remotely does not come back"
check "a not back locally" absent "$L/a"
check "b not back on the remote" absent "$R/b"
rm "$R/.homeport-trash" "$L/.homeport-trash"
pass_ok "bad trash: the trashes usable again"
has_line "$T/out" "delete-remote a" "the pending remote deletion is done"
has_line "$T/out" "delete-local b" "the pending local deletion is done"
gone a "a gone from both"
gone b "b gone from both"
check "a in the remote trash" in_trash "$R" a "base a"
check "b in the local trash" in_trash "$L" b "base b"
same "bad trash: trees equal"
converged "bad trash repaired"

# ---------------------------------------------------------------- exclusions
pair excl
printf '# the default list\n.cache/\n*.tmp\n/Trash/\n' > "$P/exclude"
put "$L/old.tmp" "synced before the list"
pass_ok "exclude: a pass without a list"
both "synced before the list" old.tmp "old.tmp synced without a list"
rm "$L/old.tmp"
put "$L/keep.txt" keep
put "$L/.cache/big" "cache"
put "$L/sub/.cache/x" "sub cache"
put "$L/a.tmp" "a tmp"
put "$L/sub/b.tmp" "b tmp"
put "$L/Trash/t1" "trash 1"
put "$L/sub/Trash/t2" "not anchored"
put "$L/sub2/.cache" "a file named .cache"
put "$L/app.log" "log v1"
put "$R/.cache/rfile" "remote cache"
put "$R/r.tmp" "remote tmp"
put "$R/Trash/rt" "remote trash"
put "$R/rkeep.txt" rkeep
pass_ok "exclude: a pass with the list" --exclude "$P/exclude"
both keep keep.txt "keep.txt synced"
both "not anchored" sub/Trash/t2 "sub/Trash is not /Trash/: synced"
both "a file named .cache" sub2/.cache "a file named .cache is not a directory: synced"
both rkeep rkeep.txt "rkeep.txt synced"
for p in .cache/big sub/.cache a.tmp sub/b.tmp Trash/t1; do check "excluded $p not copied to the remote" test ! -e "$R/$p"; done
for p in .cache/rfile r.tmp Trash/rt; do check "excluded $p not copied to local" test ! -e "$L/$p"; done
check "old.tmp, deleted locally but now excluded, is not deleted remotely" has "synced before the list" "$R/old.tmp"
check "excluded local paths are still there" bash -c '[ -f "$1/.cache/big" ] && [ -f "$1/a.tmp" ] && [ -f "$1/Trash/t1" ] && [ -f "$1/sub/.cache/x" ]' _ "$L"
check "excluded remote paths are still there" bash -c '[ -f "$1/.cache/rfile" ] && [ -f "$1/r.tmp" ] && [ -f "$1/Trash/rt" ]' _ "$R"
lacks "$T/out" "^[a-z-]+ ((sub/)?\.cache|Trash)(/|$)|\.tmp$" "no action line for an excluded path"
same "exclude: trees equal but for the excluded paths" -path ./.cache -o -path ./sub/.cache -o -path ./Trash -o -name '*.tmp'
NOCOUNT=1 converged "exclusions" --exclude "$P/exclude"
put "$R/r.tmp" "remote tmp changed"
rm "$L/a.tmp"
pass_ok "exclude: changes to excluded paths" --exclude "$P/exclude"
summary_is "nothing done for excluded paths" 0 0 0 0 0 0 0
check "excluded r.tmp not copied" test ! -e "$L/r.tmp"
check "r.tmp still on the remote" has "remote tmp changed" "$R/r.tmp"
# the .local list replaces the default one entirely
rm "$R/old.tmp"
printf '*.log\n' > "$P/exclude.local"
put "$L/app.log" "log v2, longer"
pass_ok "exclude: FILE.local replaces FILE" --exclude "$P/exclude"
both "cache" .cache/big ".cache/big now synced"
both "sub cache" sub/.cache/x "sub/.cache/x now synced"
both "b tmp" sub/b.tmp "sub/b.tmp now synced"
both "trash 1" Trash/t1 "Trash/t1 now synced"
both "remote cache" .cache/rfile ".cache/rfile now synced"
both "remote tmp changed" r.tmp "r.tmp now synced"
both "remote trash" Trash/rt "Trash/rt now synced"
check "app.log excluded by the .local list: the remote keeps v1" has "log v1" "$R/app.log"
check "app.log local v2 kept" has "log v2, longer" "$L/app.log"
same "exclude.local: trees equal but for *.log" -name '*.log'
NOCOUNT=1 converged "exclusions from FILE.local" --exclude "$P/exclude"

# ---------------------------------------------------------------- dry run
pair dry
put "$L/new-first" x
snap_all
sync_pass --dry-run
expect_rc 0 "dry run without a database"
contains "$T/out" "^sync \(dry run\): 1 to remote, 0 to local" "dry-run summary"
untouched "dry run without a database"
for f in a b c d/e k keep1 keep2 keep3; do put "$L/$f" "base $f"; done
pass_ok "dry: first pass"
put "$L/a" "a changed locally"
rm "$R/b"
put "$L/n" "new locally"
put "$R/c" "c changed remotely"
put "$L/k" "k local" $((now - 100))
put "$R/k" "k remote" $((now - 10))
chmod 600 "$R/d/e"
mkdir -p "$L/.homeport-trash/2001-01-01_000000"
snap_all
sync_pass --dry-run
expect_rc 0 "dry run"
dry_rc=$rc
cp "$T/out" "$T/dry.out"
contains "$T/out" "^sync \(dry run\): 2 to remote, 2 to local, 1 deleted locally, 0 deleted remotely, 1 conflicts, 0 special, 0 errors, [0-9]+ in step$" "dry-run summary"
untouched "dry run"
check "dry run: no trash purge" test -d "$L/.homeport-trash/2001-01-01_000000"
sync_pass
check "the real pass exits as the dry run did" test "$rc" = "$dry_rc"
norm() { sed -E 's/ [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{6}/ DATE TIME/; s/^sync \(dry run\):/sync:/' "$1"; }
if diff <(norm "$T/dry.out") <(norm "$T/out") > "$T/dry.diff"; then ok "dry run printed the same lines as the real pass"; else
    not_ok "dry run printed the same lines as the real pass"; sed 's/^/#   /' "$T/dry.diff"
fi
both "a changed locally" a "the real pass did the work"
same "dry: trees equal after the real pass"
converged "dry run, then real pass"

# ---------------------------------------------------------------- a failing path
pair errors
put "$L/ro/old" old
put "$L/k1" k1
put "$L/k2" k2
pass_ok "errors: first pass"
mount --bind "$R/ro" "$R/ro" && mount -o remount,bind,ro "$R/ro"
put "$L/ro/new.txt" "cannot land"
put "$L/fine.txt" "lands"
sync_pass
expect_rc 1 "a path that cannot be written: exit 1"
contains "$T/out" "^error ro/new.txt: .+" "error line for ro/new.txt"
has_line "$T/out" "to-remote fine.txt" "the rest is done"
contains "$T/out" "^sync: .*, 0 conflicts, 0 special, 1 errors, [0-9]+ in step$" "1 error in the summary"
both lands fine.txt "fine.txt on both sides"
check "the failed file is still local" has "cannot land" "$L/ro/new.txt"
sync_pass
expect_rc 1 "the failed path is retried (still failing)"
check "the failed file is still local after the retry" has "cannot land" "$L/ro/new.txt"
umount "$R/ro"
pass_ok "errors: the destination writable again"
has_line "$T/out" "to-remote ro/new.txt" "the failed copy is done now (not taken for a deletion)"
both "cannot land" ro/new.txt "ro/new.txt on both sides"
same "errors: trees equal"
converged "errors resolved"

# ---------------------------------------------------------------- as the owner, not root
pair owner
put "$L/a" "user's a"
put "$L/d/s" "user's secret"
chmod 700 "$L/d"
chmod 600 "$L/d/s"
put "$R/r" "user's r"
chown -R 1234:1234 "$P"
mkdir -p "$T/bin"
cp "$HOMEPORT" "$T/bin/homeport"
chmod 755 "$T/bin/homeport"
as_user() { local HOMEPORT=$T/bin/homeport; setpriv --reuid 1234 --regid 1234 --clear-groups -- "$@"; }
user_pass() {
    rc=0
    as_user timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --host "$HOST" > "$T/out" 2> "$T/err" || rc=$?
}
user_pass
expect_rc 0 "a pass as the owner of both trees (uid 1234)"
both "user's secret" d/s "the user's files copied"
both "user's r" r "and back"
check "copies are the user's" test "$(stat -c %u:%g "$R/a" "$R/d" "$R/d/s" "$L/r" "$DB" | sort -u)" = 1234:1234
check "modes kept" test "$(stat -c %a "$R/d" "$R/d/s" | tr '\n' ' ')" = "700 600 "
as_user rm "$L/a"
user_pass
expect_rc 0 "the user deletes a file: a pass"
gone a "a gone from both"
check "a in the user's remote trash" in_trash "$R" a "user's a"
same "owner: trees equal"
check "the user's trash is the user's" test "$(stat -c %u "$R/.homeport-trash")" = 1234

# ---------------------------------------------------------------- maildir (seed 003)
pair maildir
mkdir -p "$R/Maildir/cur" "$R/Maildir/new" "$R/Maildir/tmp"
put "$R/.profile" "profile"
for i in 1 2 3 4 5; do put "$R/Maildir/cur/old$i:2,S" "old mail $i"; done
pass_ok "maildir: first login (no database)"
same "maildir: the home is local"
m1=1700000001.M1P1.server m2=1700000002.M2P2.server
put "$R/Maildir/new/$m1" "mail 1 arrives on the server"
pass_ok "maildir: login"
has_line "$T/out" "to-local Maildir/new/$m1" "the new mail comes to the client"
both "mail 1 arrives on the server" "Maildir/new/$m1" "mail 1 on both sides"
rm "$L/Maildir/new/$m1"
pass_ok "maildir: logout after deleting the mail"
has_line "$T/out" "delete-remote Maildir/new/$m1" "the deletion goes to the server"
gone "Maildir/new/$m1" "mail 1 gone from both"
check "mail 1 in the server's trash" in_trash "$R" "Maildir/new/$m1" "mail 1 arrives on the server"
pass_ok "maildir: next login"
gone "Maildir/new/$m1" "the deleted mail does not come back"
summary_is "next login does nothing" 0 0 0 0 0 0 0
# the seed's order: the mail arrives on the client, goes up at logout, is
# read (moved to cur/ with flags), then deleted
put "$L/Maildir/new/$m2" "mail 2 fetched by the client"
pass_ok "maildir: logout with a new mail"
has_line "$T/out" "to-remote Maildir/new/$m2" "the mail goes up to the server"
pass_ok "maildir: login"
mv "$L/Maildir/new/$m2" "$L/Maildir/cur/$m2:2,S"
pass_ok "maildir: logout after reading"
gone "Maildir/new/$m2" "read mail left new/ on both sides"
both "mail 2 fetched by the client" "Maildir/cur/$m2:2,S" "read mail in cur/ on both sides"
rm "$L/Maildir/cur/$m2:2,S"
pass_ok "maildir: logout after deleting"
pass_ok "maildir: next login"
gone "Maildir/cur/$m2:2,S" "the deleted mail stays deleted"
check "mail 2 in the server's trash" in_trash "$R" "Maildir/cur/$m2:2,S" "mail 2 fetched by the client"
same "maildir: trees equal"
converged "maildir"

# ---------------------------------------------------------------- two machines
pair twomachines
L2=$P/L2 DB2=$P/db2
mkdir -p "$L2"
# machine2 CMD ARGS…: run a helper with machine 2's tree and database.
machine2() { local L=$L2 DB=$DB2 HOST=m2; "$@"; }
for f in a b c k1 k2 k3 k4 k5 k6; do put "$L/$f" "base $f"; done
pass_ok "machine 1: first pass"
machine2 pass_ok "machine 2: first pass (no database)"
machine2 same "machine 2 has the home"
put "$L/a" "a changed on machine 1"
rm "$L/b"
put "$L/n1" "new on machine 1"
pass_ok "machine 1 syncs its changes"
machine2 pass_ok "machine 2 syncs"
machine2 has_line "$T/out" "to-local a" "machine 2 gets the change"
machine2 has_line "$T/out" "delete-local b" "machine 2 gets the deletion"
check "a on machine 2" has "a changed on machine 1" "$L2/a"
check "b gone on machine 2" test ! -e "$L2/b"
check "n1 on machine 2" has "new on machine 1" "$L2/n1"
put "$L2/c" "c changed on machine 2"
rm "$L2/a"
put "$L2/n2" "new on machine 2"
machine2 pass_ok "machine 2 syncs its changes"
pass_ok "machine 1 syncs"
has_line "$T/out" "to-local c" "machine 1 gets the change"
has_line "$T/out" "delete-local a" "machine 1 gets the deletion"
check "c on machine 1" has "c changed on machine 2" "$L/c"
check "a gone on machine 1" test ! -e "$L/a"
check "n2 on machine 1" has "new on machine 2" "$L/n2"
same "machine 1 and the remote equal"
machine2 same "machine 2 and the remote equal"
converged "machine 1"
machine2 converged "machine 2"
# both machines change k1 before syncing: the second to sync has a conflict
put "$L/k1" "k1 from machine 1, later" $((now - 10))
put "$L2/k1" "k1 from machine 2" $((now - 100))
pass_ok "machine 1 syncs k1"
t0=$(date +%s)
machine2 pass_ok "machine 2 syncs its own k1"
t1=$(date +%s)
machine2 conflict_copy k1 remote "$t0" "$t1" m2
pass_ok "machine 1 syncs"
check "machine 1 has machine 2's k1 as '$CC'" has "k1 from machine 2" "$L/$CC"
check "machine 1 keeps its own k1" has "k1 from machine 1, later" "$L/k1"
machine2 both "k1 from machine 1, later" k1 "machine 2 and the remote: k1 from machine 1"
machine2 both "k1 from machine 2" "$CC" "machine 2 and the remote: machine 2's k1 as the conflict copy"
same "machine 1 and the remote equal after the conflict"
machine2 same "machine 2 and the remote equal after the conflict"
converged "machine 1 after the conflict"
machine2 converged "machine 2 after the conflict"


# ---------------------------------------------------------------- directory listings
# A directory whose inode and ctime are those the database recorded for its
# listing is not read again: its names come from the database.  A name
# added, removed or renamed in it moves its ctime and it is read again; a
# file's content is seen whatever its directory did (every entry is
# stat'ed).  A listing is recorded only for a directory more than 2 s old,
# only when its names are exactly what the pass left in the database
# (nothing special or excluded in it), never for the root.  -v says how
# many directories each side read and found unchanged; tests/syncdb.py
# reads the recorded listings.
pair listings
# dirs_are LDESC: the -v line of the last pass is "local A read, B
# unchanged ...; remote C read, D unchanged" with A B C D = $2 $3 $4 $5.
dirs_are() {
    contains "$T/err" "directories: local $2 read, $3 unchanged since the last pass; remote $4 read, $5 unchanged$" "$1: local $2 read, $3 unchanged; remote $4 read, $5 unchanged"
}
# vpass DESC ARGS…: pass_ok with -v.
vpass() {
    local d=$1; shift
    rc=0
    timeout 60 "$HOMEPORT" -v sync --local "$L" --remote "$R" --state "$DB" --host "$HOST" "$@" > "$T/out" 2> "$T/err" || rc=$?
    expect_rc 0 "$d"
}
# listed PATH SIDE: whether the database holds SIDE's (L or R) listing of PATH.
listed() {
    python3 "$TOP/tests/syncdb.py" "$DB" --listings | awk -F'\t' -v p="$1" -v s="$2" '
        $1 == p { split($13, f, " "); for (i in f) if (substr(f[i], 1, 2) == s "=") found = f[i] }
        END { exit !(found != "" && found != s "=0:0") }'
}
unlisted() { ! listed "$@"; }
mkdir -p "$L/a/b/c" "$L/e" "$L/s"
put "$L/a/f1" one
put "$L/a/b/f2" two
put "$L/a/b/c/f3" three
put "$L/e/f4" four
put "$L/top" top
mkfifo "$L/s/fifo"
put "$L/s/f5" five
vpass "listings: first pass"
dirs_are "first pass, no database (the remote side empty)" 6 0 1 0
check "listings: none recorded for directories younger than 2 s" bash -c '! python3 "$0" "$1" --listings | grep -v "L=0:0 R=0:0$" | grep -q .' "$TOP/tests/syncdb.py" "$DB"
sleep 2.2
vpass "listings: a pass once they are 2 s old"
dirs_are "2 s later, none recorded yet" 6 0 6 0
for d in a a/b a/b/c e; do
    check "listings: $d recorded locally" listed "$d" L
    check "listings: $d recorded on the remote side" listed "$d" R
done
check "listings: s (a fifo in it, never synced) not recorded locally" unlisted s L
check "listings: s recorded on the remote side (no fifo there)" listed s R
vpass "listings: the next pass"
dirs_are "unchanged" 2 4 1 5
NSPECIAL=1 converged "listings: trusted names"
printf 'more\n' >> "$L/a/b/c/f3"
vpass "listings: a file rewritten in place in a trusted directory"
has_line "$T/out" "to-remote a/b/c/f3" "  is seen (every entry is stat'ed) and copied"
dirs_are "in-place change: no directory changed locally" 2 4 1 5
check "  the remote copy has the new content" cmp -s "$L/a/b/c/f3" "$R/a/b/c/f3"
put "$L/a/b/new" new
rm "$R/e/f4"
mv "$L/a/f1" "$L/a/f1.renamed"
mkdir "$L/e/sub"
vpass "listings: names added, removed, renamed"
# local: root, s, a (rename), a/b (new), e (sub), e/sub (new: no listing);
# remote: root, a/b/c (the copy of f3 renamed a temp file in it), e (f4 gone)
dirs_are "each changed directory read" 6 1 3 3
has_line "$T/out" "to-remote a/b/new" "  a new name in a trusted directory is seen"
has_line "$T/out" "to-remote a/f1.renamed" "  a renamed one"
has_line "$T/out" "delete-remote a/f1" "  and its old name gone"
has_line "$T/out" "to-remote e/sub" "  a new directory"
check "  a name removed on the remote side is seen: e/f4 deleted locally" test ! -e "$L/e/f4"
chmod 755 "$L/a/b" # the same mode: only its ctime moves, now
vpass "listings: right after a directory changed (less than 2 s before)"
check "  it is not recorded" unlisted a/b L
sleep 2.2
vpass "listings: 2 s later"
vpass "listings: and again"
dirs_are "all recorded again but s" 2 5 1 6
NSPECIAL=1 converged "listings: after the changes"
# an excluded name in a directory: never recorded (a changed list could
# bring it back)
printf '*.tmp\n' > "$P/exclude"
put "$L/a/x.tmp" excluded
sleep 2.2
vpass "listings: with an excluded name" --exclude "$P/exclude"
vpass "listings: again" --exclude "$P/exclude"
check "  a (it holds x.tmp) not recorded locally" unlisted a L
check "  x.tmp not synced" test ! -e "$R/a/x.tmp"
dirs_are "a read at every pass" 3 4 1 6
# a directory swapped for another with the same names (a new inode) is read
mv "$L/e" "$L/e.old"
cp -a "$L/e.old" "$L/e"
rm -r "$L/e.old"
vpass "listings: a directory replaced by a copy" --exclude "$P/exclude"
lacks "$T/out" "^(to|delete)-" "  nothing to do"
dirs_are "its listing not trusted (new inodes): e and e/sub read" 5 2 1 6
# a database of version 1 (an older homeport's): read, then rewritten
python3 "$TOP/tests/syncdb.py" "$DB" --write-v1 "$P/v1.db"
cp "$P/v1.db" "$DB"
vpass "listings: a version 1 database" --exclude "$P/exclude"
contains "$T/out" "^sync: 0 to remote, 0 to local, 0 deleted locally, 0 deleted remotely, 0 conflicts, 1 special, 0 errors, [0-9]+ in step$" "  nothing to do"
check "  rewritten as version 2" test "$(python3 "$TOP/tests/syncdb.py" "$DB" --version)" = 2
check "  with the same entries" cmp -s <(python3 "$TOP/tests/syncdb.py" "$P/v1.db") <(python3 "$TOP/tests/syncdb.py" "$DB")

# ---------------------------------------------------------------- SIGINT
# Ctrl-C ends the pass after the path it is on: what was done is recorded,
# the exit status is 1, and the next pass finishes the work.
pair sigint
# 20 files of 8 MiB first (path order: "big" before "d1"), each copy written
# and fsynced, so that the signal comes while the pass still has work
mkdir "$L/big"
for f in $(seq 20); do truncate -s 8M "$L/big/b$f"; done
for d in $(seq 40); do mkdir -p "$L/d$d"; for f in $(seq 50); do : > "$L/d$d/f$f"; done; done
timeout 60 "$HOMEPORT" sync --local "$L" --remote "$R" --state "$DB" --host "$HOST" > "$T/out" 2> "$T/err" &
SP=$!
for i in $(seq 400); do grep -q '^to-remote big/' "$T/out" 2> /dev/null && break; sleep 0.02; done
kill -INT "$SP"
rc=0
wait "$SP" || rc=$?
if grep -q '^sync: 2061 to remote' "$T/out"; then
    skip "SIGINT stops a pass" "the pass ended before the signal"
else
    expect_rc 1 "SIGINT stops a pass"
    contains "$T/err" "stopped before the end; the next pass goes on" "  and says so"
    lacks "$T/out" "^error " "  with no error"
    check "  leaving no temp file" bash -c "! find '$R' -name '*.homeport-tmp' | grep -q ."
fi
pass_ok "the next pass finishes the work"
check "  every file is on the remote side" test "$(find "$R" -type f | wc -l)" = 2020
converged "after a stopped pass"

done_testing
