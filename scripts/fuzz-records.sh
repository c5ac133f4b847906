#!/usr/bin/env bash
# Runs each kpax-proto records fuzz target (kpax-proto/fuzz) for a bounded
# time: `scripts/fuzz-records.sh [seconds-per-target]` (default 60, or
# $FUZZ_SECONDS). Needs a nightly toolchain and cargo-fuzz; says so and exits
# 0 without fuzzing when either is missing. Not part of the normal test run.
set -euo pipefail

seconds="${1:-${FUZZ_SECONDS:-60}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/kpax-proto/fuzz"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz-records: SKIPPED, no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-records: SKIPPED, cargo-fuzz is missing (cargo install cargo-fuzz)"
    exit 0
fi

for target in batch legacy; do
    echo "fuzz-records: $target for ${seconds}s"
    # -rss_limit_mb catches allocations beyond what the input justifies
    # (the decompression limit in the targets is 1 MiB).
    cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=512 -max_len=65536 -timeout=10
done
echo "fuzz-records: all targets ran ${seconds}s without a crash"
