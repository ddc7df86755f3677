#!/usr/bin/env bash
# tests/funclen.sh [LIMIT [DIR...]]: how long the C functions are (default
# LIMIT 120, DIR agent).  Prints the number of functions, how many are over
# 100 and over LIMIT lines, the ten longest, each one over LIMIT, and the
# files over 500 lines.  A function's length runs from the line of its name
# to its closing brace, as Universal Ctags reports them (--fields=+ne).
# Exits 1 when a function is over LIMIT (`make funclen` is a check).
set -eu
cd "$(dirname "$0")/.."
limit=${1:-120}
shift || true
[ $# -gt 0 ] || set -- agent
command -v ctags > /dev/null || { echo "funclen: needs ctags (Debian: universal-ctags)" >&2; exit 2; }
mapfile -t files < <(find "$@" -name '*.c' | sort)
# "LENGTH FILE:LINE NAME", longest first
lens=$(ctags -x --c-kinds=f --fields=+ne --_xformat='%N %F %n %{end}' "${files[@]}" |
    awk '$4 != "" { printf "%d %s:%d %s\n", $4 - $3 + 1, $2, $3, $1 }' | sort -k1,1nr -k2,2)
echo "$lens" | awk -v limit="$limit" '
    { n++; if ($1 > 100) o100++; if ($1 > limit) olim++ }
    END { printf "%d functions, %d over 100 lines, %d over %d lines\n", n, o100, olim, limit }'
echo "longest:"
echo "$lens" | head -10 | awk '{ print "  " $0 }'
over=$(echo "$lens" | awk -v limit="$limit" '$1 > limit { print "  " $0 }')
[ -z "$over" ] || printf 'over %d lines:\n%s\n' "$limit" "$over"
echo "files over 500 lines:"
wc -l "${files[@]}" | awk '$2 != "total" && $1 > 500 { print "  " $1, $2 }' | sort -nr
[ -z "$over" ]
