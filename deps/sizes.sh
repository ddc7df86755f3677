#!/bin/sh
# deps/sizes.sh [--title TITLE] [--max BYTES STRIPPED] MAP: what each
# library costs in the static binary, from the link map (-Wl,-Map; GNU ld's
# or lld's, which the static build uses):
# the bytes of the input sections each archive (or homeport's own objects)
# put in the binary's loaded, file-backed sections (.text, .rodata, .data,
# .eh_frame, ...; not .bss, not debug sections), largest first, with the
# share of the whole.  With --max, first the size of the STRIPPED file
# against BYTES; the exit status is 1 when it is over.
set -eu
usage() { echo "usage: $0 [--title TITLE] [--max BYTES STRIPPED] MAP" >&2; exit 2; }
title="" max="" stripped="" over=0
while [ $# -gt 1 ]; do
    case $1 in
    --title) title=$2; shift 2 ;;
    --max) [ $# -ge 3 ] || usage; max=$2 stripped=$3; shift 3 ;;
    *) usage ;;
    esac
done
[ $# -eq 1 ] || usage
[ -z "$title" ] || echo "== $title"
if [ -n "$max" ]; then
    size=$(stat -c %s "$stripped")
    verdict="within the target of $max"
    [ "$size" -le "$max" ] || { verdict="OVER the target of $max"; over=1; }
    printf 'stripped size: %s bytes (%s), %s\n' "$size" "$stripped" "$verdict"
fi
echo "what each library costs (bytes in the binary, from the link map):"
awk '
/^Linker script and memory map/ { m = 1; next }
/^ +VMA +LMA +Size +Align +Out +In +Symbol/ { m = 1; lld = 1; next }
!m { next }
function hex(h,   i, n, c) {
    n = 0; h = tolower(h); sub(/^0x/, "", h)
    for (i = 1; i <= length(h); i++) n = n * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
    return n
}
function add(name, size, file,   lib) {
    if (name !~ /^\.(text|rodata|data|eh_frame|gcc_except_table|init_array|fini_array|tdata|got)/) return
    if (size == 0) return
    lib = file
    if (lib ~ /\.a\(/) { sub(/\(.*/, "", lib); sub(/.*\//, "", lib) }
    else if (lib ~ /build\/(static|notls)\/obj\//) lib = "homeport"
    else if (lib ~ /musl|crt[1in]|Scrt/) lib = "libc.a"
    else { sub(/.*\//, "", lib) }
    if (lib ~ /^libc\.a$/ || lib ~ /musl/) lib = "libc.a"
    if (lib == "<internal>") lib = "(lld: merged strings and constants of all)"
    bytes[lib] += size; total += size
}
# lld: VMA LMA SIZE ALIGN FILE:(SECTION) for an input section (an output
# section or a symbol has no ":(")
lld {
    if (NF == 5 && $5 ~ /:\(\.[^)]*\)$/) {
        sec = $5; sub(/.*:\(/, "", sec); sub(/\)$/, "", sec)
        file = $5; sub(/:\([^(]*\)$/, "", file)
        add(sec, hex($3), file)
    }
    next
}
pending != "" {
    if (NF == 3 && $1 ~ /^0x/) add(pending, hex($2), $3)
    pending = ""
}
/^ \.[a-zA-Z_]/ {
    if (NF == 4 && $2 ~ /^0x/) add($1, hex($3), $4)
    else if (NF == 1) pending = $1
}
END {
    for (l in bytes) printf "%10d %5.1f%%  %s\n", bytes[l], 100 * bytes[l] / total, l | "sort -rn"
    close("sort -rn")
    printf "%10d 100.0%%  in all (loaded sections; the stripped file adds headers and alignment)\n", total
}' "$1"
exit $over
