#!/usr/bin/env bash
# Runs kpax's fuzz targets (kpax-proto/fuzz) each for a bounded number of
# executions or time:
#
#   scripts/fuzz.sh [--runs N | --seconds S] [target...]
#
# Targets: batch, legacy (record batches and legacy message sets),
# messages (every generated request and response decoder, all APIs and
# versions), group_protocol (consumer protocol subscriptions and
# assignments), scram (SASL/SCRAM server messages). Default: every
# target, 10,000,000 runs each.
# libFuzzer runs with -malloc_limit_mb=256, so an allocation sized by an
# untrusted length fails the run. Needs cargo-fuzz (cargo install
# cargo-fuzz) and a nightly toolchain, or the stable one with
# RUSTC_BOOTSTRAP=1; says so and exits 0 when neither is there. Not part of
# the normal test run. Prints executions and the end of each run's stats.
set -euo pipefail

runs=10000000
seconds=""
targets=()
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=${2:?}; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(batch legacy messages group_protocol scram)

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/kpax-proto/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED, cargo-fuzz is missing (cargo install cargo-fuzz)"
    exit 0
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    echo "fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
fi

limit=(-runs="$runs")
[ -n "$seconds" ] && limit=(-max_total_time="$seconds")
for target in "${targets[@]}"; do
    echo "fuzz: $target (${seconds:+${seconds}s}${seconds:-$runs runs})"
    mkdir -p "corpus/$target"
    log=$(mktemp)
    # -rss_limit_mb and -malloc_limit_mb: the decompression limit in the
    # targets is 1 MiB, so more than this is an allocation the input did
    # not justify.
    seeds=()
    [ -d "seeds/$target" ] && seeds=("seeds/$target")
    if ! cargo "${toolchain[@]}" fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
        "${limit[@]}" -rss_limit_mb=1024 -malloc_limit_mb=256 -max_len=65536 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $target FAILED (crash input under kpax-proto/fuzz/artifacts/$target)"
        exit 1
    fi
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || tail -n 3 "$log"
    rm -f "$log"
done
echo "fuzz: every target ran without a crash"
