#!/usr/bin/env bash
# Where a client's CPU goes, per bench case: each client runs alone against
# a fresh librdkafka mock cluster (3 brokers, its own process) under
# `perf record`, and its samples (user and kernel, the client process only)
# are sorted into what the bytes cost (copies, CRC32C, compression, the
# kernel's TCP path, page faults) and what the records cost (kpax's own
# code, the allocator, the async runtime, locks and wake-ups).
#
#   scripts/profile.sh                          # the default cases, kpax and rdkafka
#   scripts/profile.sh --cases produce:100:all,consume:16384 --clients kpax
#
# A case is produce:SIZE:ACKS[:COMPRESSION] or consume:SIZE[:COMPRESSION].
# Needs perf (linux-tools) and the bench binaries (built here by cargo).
# Writes benches/results/profile.md (a table per case) and prints it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

cases="produce:100:all,produce:1024:1,produce:16384:1,produce:1024:all:zstd,consume:100,consume:1024,consume:16384,consume:1024:lz4,consume:1024:zstd"
clients="kpax,rdkafka"
while [ $# -gt 0 ]; do
    case $1 in
    --cases) cases=${2:?}; shift 2 ;;
    --clients) clients=${2:?}; shift 2 ;;
    *) echo "profile.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
command -v perf >/dev/null || { echo "profile.sh: needs perf" >&2; exit 1; }

export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$ROOT/target/bench}"
# shellcheck source=scripts/bench-bins.sh
. scripts/bench-bins.sh

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kpax-profile.XXXXXX")
MOCK=""
cleanup() {
    [ -n "$MOCK" ] && kill "$MOCK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# mock BIN PARTITIONS: a fresh mock cluster; sets BOOT.
mock() {
    [ -n "$MOCK" ] && kill "$MOCK" 2>/dev/null && wait "$MOCK" 2>/dev/null || true
    "$1" serve-mock 3 "$2" >"$WORK/mock.out" 2>/dev/null &
    MOCK=$!
    for _ in $(seq 100); do
        BOOT=$(sed -n 's/^BOOTSTRAP=//p' "$WORK/mock.out")
        [ -n "$BOOT" ] && return 0
        sleep 0.05
    done
    echo "profile.sh: the mock did not start" >&2
    exit 1
}

OUT="$ROOT/benches/results/profile.md"
{
    echo "# Where the client CPU goes, per case"
    echo
    echo "Made by \`scripts/profile.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes');"
    echo "$(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg). Each client alone on a fresh librdkafka"
    echo "mock cluster (3 brokers, 6 partitions), sampled by \`perf record\` (user and kernel, the"
    echo "client process only). Shares of the client's samples; the kernel's TCP path"
    echo "includes loopback delivery to the mock, which runs in the sender's system call."
    echo "CPU µs/rec is the client's own getrusage figure for the run (under perf)."
    echo
    echo "| case | client | CPU µs/rec | copy % | CRC32C % | codec % | page faults % | sched, futex % | kernel TCP % | other kernel % | allocator % | clock % | runtime, sync % | client code % | unsorted % |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$OUT"

IFS=, read -r -a case_list <<<"$cases"
IFS=, read -r -a client_list <<<"$clients"
for c in "${case_list[@]}"; do
    IFS=: read -r bench size a3 a4 <<<"$c"
    if [ "$bench" = produce ]; then
        acks=${a3:-all} comp=${a4:-none}
    else
        acks="" comp=${a3:-none}
    fi
    case $size in
    100) n=3000000 ;;
    1024) n=600000 ;;
    *) n=60000 ;;
    esac
    [ "$comp" = zstd ] && n=$((n / 3))
    for who in "${client_list[@]}"; do
        data="$WORK/$who.$bench.$size.data"
        if [ "$bench" = produce ]; then
            mock "$PRODUCE" 6
            perf record -q -o "$data" -F 2000 -- "$PRODUCE" client "$who" --bootstrap "$BOOT" \
                --records "$n" --size "$size" --acks "$acks" --compression "$comp" --batch 65536 \
                --linger-ms 5 >"$WORK/line" 2>/dev/null
        else
            mock "$CONSUME" 6
            ranges=$("$CONSUME" fill --bootstrap "$BOOT" --records "$n" --size "$size" \
                --compression "$comp" | sed -n 's/^RANGES=//p')
            perf record -q -o "$data" -F 2000 -- "$CONSUME" client "$who" --bootstrap "$BOOT" \
                --records "$n" --size "$size" --ranges "$ranges" >"$WORK/line" 2>/dev/null
        fi
        perf report -i "$data" --no-children --sort dso,symbol --stdio 2>/dev/null |
            python3 scripts/profile-report.py "$who" "$c" "$(cat "$WORK/line")" >>"$OUT"
    done
done
cat "$OUT"
