# Sourced by scripts/bench.sh and scripts/profile.sh: builds the bench
# binaries (benches/produce.rs, benches/consume.rs) in $CARGO_TARGET_DIR
# and sets PRODUCE and CONSUME to their paths.
bins=$(cargo bench --bench produce --bench consume --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] in ("produce", "consume") and m.get("executable"):
        print(m["target"]["name"], m["executable"])')
PRODUCE=$(awk '$1 == "produce" {print $2}' <<<"$bins")
CONSUME=$(awk '$1 == "consume" {print $2}' <<<"$bins")
[ -x "$PRODUCE" ] && [ -x "$CONSUME" ] || { echo "cargo bench --no-run failed" >&2; exit 1; }
