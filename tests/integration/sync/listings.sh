#!/usr/bin/env bash
# homeport sync, directory listings (the names a pass need not read
# again): recorded, trusted, and distrusted after each kind of change.
#
# A directory whose inode and ctime are those the database recorded for its
# listing is not read again: its names come from the database.  A name
# added, removed or renamed in it moves its ctime and it is read again; a
# file's content is seen whatever its directory did (every entry is
# stat'ed).  A listing is recorded only for a directory more than 2 s old,
# only when its names are exactly what the pass left in the database
# (nothing special or excluded in it), never for the root.  -v says how
# many directories each side read and found unchanged; tests/syncdb.py
# reads the recorded listings.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

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

done_testing
