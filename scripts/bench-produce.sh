#!/usr/bin/env bash
# kpax vs rdkafka produce benchmark (benches/produce.rs); results in benches/PRODUCE_RESULTS.md.
#
#   scripts/bench-produce.sh                 # build, then the default run (mock3, 100 B and 1 KiB, acks all and 1, 5 reps)
#   scripts/bench-produce.sh --pin           # the same, client on cpu0 and broker on cpu1
#   scripts/bench-produce.sh --brokers tansu --cases 100:1000000 --reps 3
#   scripts/bench-produce.sh --icount 100000:300000 --cases 100:0,1024:0   # instructions/record (callgrind)
#   scripts/bench-produce.sh profile kpax 100 1 300000                     # callgrind profile of one client run
#
# Builds in its own target dir (PRODUCE_TARGET_DIR, default target/produce-bench)
# so that concurrent builds in target/ neither block it nor invalidate it.
# Brokers: the librdkafka mock in a helper process (`serve-mock`) and tansu
# ($TANSU, default ~/.local/kpax-tools/bin/tansu), fresh per client run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

export CARGO_TARGET_DIR="${PRODUCE_TARGET_DIR:-$PWD/target/produce-bench}"
BIN=$(cargo bench --bench produce --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "produce" and m.get("executable"):
        print(m["executable"])')
[ -x "$BIN" ] || { echo "build failed: cargo bench --bench produce --no-run" >&2; exit 1; }
echo "# binary: $BIN" >&2
echo "# load: $(uptime)" >&2

if [ "${1:-}" = profile ]; then
    # profile CLIENT SIZE ACKS N: one client run under callgrind against a fresh
    # mock (3 brokers), then the function-level top list (exclusive instructions).
    client=${2:-kpax} size=${3:-100} acks=${4:-1} n=${5:-300000}
    out="${PROFILE_DIR:-/tmp}/callgrind.$client.$size.acks$acks.$n.out"
    fifo=$(mktemp -u) && mkfifo "$fifo"
    "$BIN" serve-mock 3 >"$fifo" </dev/null &
    mock=$!
    trap 'kill "$mock" 2>/dev/null || true; rm -f "$fifo"' EXIT
    read -r line <"$fifo"
    boot=${line#BOOTSTRAP=}
    valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$out" \
        "$BIN" client "$client" --bootstrap "$boot" --records "$n" --size "$size" --acks "$acks" 2>/dev/null
    callgrind_annotate --inclusive=no "$out" 2>/dev/null | head -60
    echo "# inclusive:"
    callgrind_annotate --inclusive=yes "$out" 2>/dev/null | head -60
    exit 0
fi

exec "$BIN" "$@"
