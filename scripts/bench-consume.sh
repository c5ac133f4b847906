#!/usr/bin/env bash
# kpax vs rdkafka consume benchmark (benches/consume.rs); results in benches/CONSUME_RESULTS.md.
#
#   scripts/bench-consume.sh                  # build, then the default run (mock3, 100 B x 2 M and 1 KiB x 600 k, 3 reps)
#   scripts/bench-consume.sh --pin            # the same, client on cpu0 and broker on cpu1
#   scripts/bench-consume.sh --brokers mock1,mock3 --cases 100:1000000 --reps 5 --raw /tmp/cb/raw.txt
#   scripts/bench-consume.sh profile kpax 100 500000   # callgrind profile of one client run
#
# Builds in its own target dir (CONSUME_TARGET_DIR, default target/consume-bench).
# Broker: the librdkafka mock in a helper process (`serve-mock`), fresh per client run,
# filled with N records before the timed client run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

export CARGO_TARGET_DIR="${CONSUME_TARGET_DIR:-$PWD/target/consume-bench}"
BIN=$(cargo bench --bench consume --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "consume" and m.get("executable"):
        print(m["executable"])')
[ -x "$BIN" ] || { echo "build failed: cargo bench --bench consume --no-run" >&2; exit 1; }
echo "# binary: $BIN" >&2
echo "# load: $(uptime)" >&2

if [ "${1:-}" = profile ]; then
    # profile CLIENT SIZE N: fill a fresh mock (3 brokers) with N records, run one
    # client under callgrind, then the function-level top lists.
    client=${2:-kpax} size=${3:-100} n=${4:-500000}
    out="${PROFILE_DIR:-/tmp}/callgrind.consume.$client.$size.$n.out"
    fifo=$(mktemp -u) && mkfifo "$fifo"
    "$BIN" serve-mock 3 >"$fifo" </dev/null &
    mock=$!
    trap 'kill "$mock" 2>/dev/null || true; rm -f "$fifo"' EXIT
    read -r line <"$fifo"
    boot=${line#BOOTSTRAP=}
    ranges=$("$BIN" fill --bootstrap "$boot" --records "$n" --size "$size")
    ranges=${ranges#RANGES=}
    echo "# ranges: $ranges" >&2
    valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$out" \
        "$BIN" client "$client" --bootstrap "$boot" --records "$n" --size "$size" --ranges "$ranges" 2>/dev/null
    echo "# inclusive:"
    callgrind_annotate --inclusive=yes "$out" 2>/dev/null | head -70
    echo "# exclusive:"
    callgrind_annotate --inclusive=no "$out" 2>/dev/null | head -50
    exit 0
fi

exec "$BIN" "$@"
