#!/usr/bin/env bash
# The benchmark matrix: kpax against rdkafka (librdkafka), the Java client
# (kafka-clients) and franz-go, each client in its own process, on
# librdkafka's mock cluster (3 brokers, in its own process) and on a real
# 3-node Apache Kafka cluster; then the tables and plots.
#
#   scripts/bench.sh                      # the default matrix (below), 3 repetitions
#   scripts/bench.sh --full               # every case of issue 22: 100 B, 1 KiB, 16 KiB x acks all/1
#                                         #   x none/lz4/zstd, produce and consume
#   scripts/bench.sh --brokers mock3 --reps 5
#   scripts/bench.sh --report-only        # redo the tables and plots from the last raw file
#   scripts/bench.sh --brokers kafka --append   # add rows to the last raw file instead of starting anew
#
# Default matrix: produce at 100 B, 1 KiB and 16 KiB with acks=all
# (idempotent) and acks=1, no compression; produce 1 KiB acks=all with lz4
# and zstd; consume at 100 B, 1 KiB, 16 KiB uncompressed and 1 KiB lz4/zstd;
# at 6 partitions, then produce and consume 100 B at 100, 1,000 and (mock)
# 10,000 partitions.
#
# Needs: cargo, a JDK 17+ (javac), Go, python3; Kafka's jars come from
# Maven Central through scripts/kafka.sh (into $KPAX_TOOLS). When
# KPAX_KAFKA is unset and the brokers include `kafka`, a 3-node Kafka 4.4
# cluster is started for the run (small heaps) and stopped at the end.
#
# Writes benches/results/raw.txt (one line per client run), then
# benches/RESULTS.md and the SVG plots in benches/results/ (made by
# scripts/bench-report.py). Clients: kpax and rdkafka are roles of the
# bench binaries (benches/produce.rs, benches/consume.rs); the Java client
# is benches/peers/java/Bench.java (compiled against kafka-clients 4.4.0)
# and franz-go is benches/peers/franz (go build). The Java client does not
# run on the mock (it cannot read the mock's ApiVersions answer; see
# benches/common/mod.rs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

brokers="mock3,kafka"
reps=3
full=0
report_only=0
append=0
while [ $# -gt 0 ]; do
    case $1 in
    --brokers) brokers=${2:?}; shift 2 ;;
    --reps) reps=${2:?}; shift 2 ;;
    --full) full=1; shift ;;
    --report-only) report_only=1; shift ;;
    --append) append=1; shift ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

OUT="$ROOT/benches/results"
RAW="$OUT/raw.txt"
mkdir -p "$OUT"
if [ "$report_only" = 1 ]; then
    exec python3 scripts/bench-report.py "$RAW" "$ROOT/benches/RESULTS.md" "$OUT"
fi

export KPAX_TOOLS="${KPAX_TOOLS:-$HOME/.local/kpax-tools}"
KAFKA_VERSION=$(bash scripts/kafka.sh versions | cut -d' ' -f1)
bash scripts/kafka.sh fetch "$KAFKA_VERSION" >/dev/null
LIB="$KPAX_TOOLS/kafka-$KAFKA_VERSION/lib"

# Builds: the bench binaries in their own target dir, the peers beside them.
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$ROOT/target/bench}"
# shellcheck source=scripts/bench-bins.sh
. scripts/bench-bins.sh
PEERS="$CARGO_TARGET_DIR/peers"
mkdir -p "$PEERS/java"
javac -nowarn -d "$PEERS/java" -cp "$LIB/*" benches/peers/java/Bench.java
(cd benches/peers/franz && go build -o "$PEERS/franz-bench" .)
export KPAX_BENCH_JAVA_CP="$LIB/*:$PEERS/java"
export KPAX_BENCH_FRANZ="$PEERS/franz-bench"

KAFKA_DIR=""
cleanup() {
    if [ -n "$KAFKA_DIR" ]; then
        bash scripts/kafka.sh stop --dir "$KAFKA_DIR" >/dev/null 2>&1 || true
        rm -rf "$KAFKA_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ ,$brokers, == *,kafka,* ]] && [ -z "${KPAX_KAFKA:-}" ]; then
    KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kpax-bench-kafka.XXXXXX")
    KAFKA_HEAP="${KAFKA_HEAP:--Xms512m -Xmx1g}" KAFKA_JVM="${KAFKA_JVM:--XX:+UseG1GC}" \
        bash scripts/kafka.sh start --version "$KAFKA_VERSION" --nodes 3 --dir "$KAFKA_DIR"
    export KPAX_KAFKA="$KAFKA_DIR/state"
fi

[ "$append" = 1 ] || : >"$RAW"
{
    echo "# $(date -u '+%Y-%m-%d %H:%M UTC') commit $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'), brokers $brokers"
    echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)"
    echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$RAW"

# run BROKER BENCH ARGS...: one driver over the clients that run there.
run() {
    local broker=$1 bench=$2
    shift 2
    local clients=kpax,rdkafka,java,franz
    [[ $broker == mock* ]] && clients=kpax,rdkafka,franz
    local bin=$PRODUCE
    [ "$bench" = consume ] && bin=$CONSUME
    echo "==> $bench on $broker: $*" >&2
    "$bin" --brokers "$broker" --clients "$clients" --reps "$reps" --raw "$RAW" "$@"
}

IFS=, read -r -a broker_list <<<"$brokers"
for broker in "${broker_list[@]}"; do
    # Fewer records on Kafka: three replicas on one disk, and a broker that
    # is the bottleneck on 2 cores.
    if [ "$broker" = kafka ]; then
        c100=500000 c1k=150000 c16k=15000
    else
        c100=2000000 c1k=600000 c16k=60000
    fi
    if [ "$full" = 1 ]; then
        run "$broker" produce --cases "100:$c100,1024:$c1k,16384:$c16k" --acks all,1 --compression none,lz4,zstd
        run "$broker" consume --cases "100:$c100,1024:$c1k,16384:$c16k" --compression none,lz4,zstd
    else
        run "$broker" produce --cases "100:$c100,1024:$c1k,16384:$c16k" --acks all,1 --compression none
        run "$broker" produce --cases "1024:$c1k" --acks all --compression lz4,zstd
        run "$broker" consume --cases "100:$c100,1024:$c1k,16384:$c16k" --compression none
        run "$broker" consume --cases "1024:$c1k" --compression lz4,zstd
    fi
    # Scaling with the number of partitions (100 B, idempotent produce; consume).
    # Kafka stops at 1,000: 10,000 partitions x 3 replicas is more than a
    # 2-core machine hosts (the mock keeps them in memory).
    parts=100,1000,10000
    [ "$broker" = kafka ] && parts=100,1000
    run "$broker" produce --cases "100:$c100" --acks all --compression none --partitions "$parts"
    run "$broker" consume --cases "100:$c100" --compression none --partitions "$parts"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RAW"

python3 scripts/bench-report.py "$RAW" "$ROOT/benches/RESULTS.md" "$OUT"
