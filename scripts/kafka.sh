#!/usr/bin/env bash
# Apache Kafka (KRaft) for kpax's tests, from Maven Central only.
#
#   scripts/kafka.sh fetch [VERSION...]        resolve brokers into $KPAX_TOOLS/kafka-V/lib
#                                              (default: the pinned 4.x and 3.9.x; `--legacy`:
#                                              the old releases below), reused when present
#   scripts/kafka.sh start [--version V] [--nodes N] [--dir D]
#                                              format and start N combined controller+broker
#                                              nodes; write D/state; print the bootstrap
#   scripts/kafka.sh stop [--dir D]            stop every node of the cluster in D (by pid)
#   scripts/kafka.sh node --dir D ID ACTION    ACTION: kill (SIGKILL), pause (SIGSTOP),
#                                              resume (SIGCONT), term (SIGTERM, waits for exit),
#                                              start (again, same ports and data), alive
#   scripts/kafka.sh status [--dir D]          print D/state and which nodes are alive
#   scripts/kafka.sh versions [--legacy]       the pinned releases (or the old ones)
#
# Old releases (before 3.0: 0.8.2.2, 0.10.2.2, 0.11.0.3, 1.1.1, 2.8.2) run in
# ZooKeeper mode: `start --version 0.10.2.2` starts one ZooKeeper and one
# broker with a PLAINTEXT listener only (1 node), on the same JVM as the
# rest, and writes the same kind of state file (mode=zookeeper).
#
# Each node listens on 127.0.0.1 with PLAINTEXT, SSL (client certificates
# requested, not required), SASL_PLAINTEXT and SASL_SSL (PLAIN,
# SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER with unsecured tokens), plus its
# CONTROLLER listener. Certificates (a CA, one per node, one client) are made
# at start with openssl, as PEM files. D/state is `key=value` lines (see
# write_state) that the test harness reads (KPAX_KAFKA=D/state).
#
# Environment: KPAX_TOOLS (default ~/.local/kpax-tools), KAFKA_HEAP (default
# -Xms128m -Xmx512m), KAFKA_JVM (default -XX:+UseSerialGC
# -XX:TieredStopAtLevel=1), JAVA (default: java on PATH, or $JAVA_HOME/bin/java).
set -euo pipefail

KAFKA_4=4.4.0
KAFKA_3=3.9.2
KAFKA_LEGACY="0.8.2.2 0.10.2.2 0.11.0.3 1.1.1 2.8.2"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="${KPAX_TOOLS:-$HOME/.local/kpax-tools}"
HEAP="${KAFKA_HEAP:--Xms128m -Xmx512m}"
# Quick start and a small footprint for tests (C1 only, serial GC); the
# benchmarks (scripts/bench.sh) give the brokers Kafka's own G1 and full JIT.
JVM_FLAGS="${KAFKA_JVM:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
if [ -z "${JAVA:-}" ]; then
    if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then JAVA="$JAVA_HOME/bin/java"; else JAVA=java; fi
fi

die() {
    echo "kafka.sh: $*" >&2
    exit 1
}

lib_dir() { echo "$TOOLS/kafka-$1/lib"; }

# is_legacy VERSION: a release before 3.0 (run with ZooKeeper).
is_legacy() { [[ $1 =~ ^(0|1|2)\. ]]; }

# scala_of VERSION: the Scala build Maven serves of an old release.
scala_of() {
    case $1 in
    0.8.*) echo 2.10 ;;
    0.9.* | 0.10.* | 0.11.*) echo 2.11 ;;
    *) echo 2.12 ;;
    esac
}

# fetch VERSION: copies kafka_2.13 VERSION and its runtime dependencies into
# lib_dir, unless a complete copy is there already.
fetch_one() {
    local version=$1 lib
    lib=$(lib_dir "$version")
    if [ -f "$lib/.complete" ]; then
        echo "kafka $version: already at $lib"
        return 0
    fi
    command -v mvn >/dev/null || die "mvn is not installed (apt-get install -y maven)"
    echo "kafka $version: resolving from Maven Central into $lib"
    rm -rf "$lib"
    mkdir -p "$lib"
    local pom=$HERE/kafka/pom.xml scala=2.13
    if is_legacy "$version"; then
        pom=$HERE/kafka/legacy-pom.xml
        scala=$(scala_of "$version")
    fi
    mvn -q -B -f "$pom" -Dkafka.version="$version" -Dkafka.scala="$scala" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$lib" ||
        die "mvn could not resolve kafka $version"
    [ -f "$lib/kafka_$scala-$version.jar" ] || die "kafka_$scala-$version.jar missing after resolution"
    touch "$lib/.complete"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# make_certs DIR NODES: a CA, a certificate per node (SAN 127.0.0.1 and
# localhost), and a client certificate; keys are unencrypted PKCS#8 EC P-256.
make_certs() {
    local dir=$1 nodes=$2 n
    mkdir -p "$dir/tls"
    (
        cd "$dir/tls"
        openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem -days 30 -subj "/CN=kpax test CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        sign() { # sign NAME CN EXT
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
            printf '%s\n' "$3" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
                -out "$1.pem" -days 30 -extfile "$1.ext" 2>/dev/null
            cat "$1.key" "$1.pem" >"$1.keystore.pem"
            rm -f "$1.csr" "$1.ext"
        }
        for n in $(seq 1 "$nodes"); do
            sign "node-$n" "localhost" "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth,clientAuth"
        done
        sign client "kpax-client" "extendedKeyUsage=clientAuth"
    ) || die "openssl could not make the test certificates"
}

# The SASL users: PLAIN ones live in the JAAS line, SCRAM ones are written
# into the metadata log at format time.
PLAIN_USER=kpax-plain
PLAIN_PASSWORD=plain-secret
SCRAM_USER=kpax-scram
SCRAM_PASSWORD=scram-secret

jaas_lines() { # jaas_lines LISTENER
    local l=$1
    echo "listener.name.$l.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$PLAIN_USER=\"$PLAIN_PASSWORD\";"
    echo "listener.name.$l.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "listener.name.$l.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "listener.name.$l.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"kafka\";"
    echo "listener.name.$l.oauthbearer.sasl.server.callback.handler.class=org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler"
}

# write_props DIR NODE NODES VOTERS: the node's server.properties.
write_props() {
    local dir=$1 n=$2 nodes=$3 voters=$4 rf isr
    rf=$((nodes < 3 ? nodes : 3))
    isr=$((nodes < 2 ? 1 : 2))
    local p=${PORT_PLAINTEXT[$n]} s=${PORT_SSL[$n]} sp=${PORT_SASL_PLAINTEXT[$n]} ss=${PORT_SASL_SSL[$n]} c=${PORT_CONTROLLER[$n]}
    cat >"$dir/node-$n/server.properties" <<EOF
# Written by scripts/kafka.sh for kpax's tests.
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$p,SSL://127.0.0.1:$s,SASL_PLAINTEXT://127.0.0.1:$sp,SASL_SSL://127.0.0.1:$ss,CONTROLLER://127.0.0.1:$c
advertised.listeners=PLAINTEXT://127.0.0.1:$p,SSL://127.0.0.1:$s,SASL_PLAINTEXT://127.0.0.1:$sp,SASL_SSL://127.0.0.1:$ss
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/node-$n/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=6
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.session.timeout.ms=10000
group.consumer.min.heartbeat.interval.ms=200
group.consumer.heartbeat.interval.ms=1000
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
transaction.remove.expired.transaction.cleanup.interval.ms=10000
log.retention.check.interval.ms=10000
num.network.threads=2
num.io.threads=4
background.threads=4
num.recovery.threads.per.data.dir=1
socket.request.max.bytes=104857600
auto.create.topics.enable=true
delete.topic.enable=true
ssl.keystore.type=PEM
ssl.keystore.location=$dir/tls/node-$n.keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
listener.name.ssl.ssl.client.auth=requested
ssl.endpoint.identification.algorithm=
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
$(jaas_lines sasl_plaintext)
$(jaas_lines sasl_ssl)
EOF
}

write_log4j() {
    cat >"$1/log4j2.properties" <<'EOF'
# Kafka's own log, one file per node (kafka.logs.dir), INFO and above.
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
}

java_cmd() { # java_cmd DIR NODE MAIN ARGS...: sets JCMD, the command line of a JVM of the cluster
    local dir=$1 n=$2 heap flags
    shift 2
    read -r -a heap <<<"$HEAP"
    read -r -a flags <<<"$JVM_FLAGS"
    JCMD=("$JAVA" "${heap[@]}" "${flags[@]}" -Djava.awt.headless=true
        -Dkafka.logs.dir="$dir/node-$n" -Dlog4j2.configurationFile="$dir/log4j2.properties"
        -cp "$(lib_dir "$(state_get "$dir" version)")/*" "$@")
}

state_get() { # state_get DIR KEY
    local line
    line=$(grep -m1 "^$2=" "$1/state" 2>/dev/null) || return 1
    echo "${line#*=}"
}

state_set() { # state_set DIR KEY VALUE: replaces or appends one line
    local tmp="$1/state.tmp"
    grep -v "^$2=" "$1/state" >"$tmp" 2>/dev/null || true
    echo "$2=$3" >>"$tmp"
    mv "$tmp" "$1/state"
}

node_pid() { state_get "$1" "node.$2.pid" || echo ""; }

node_alive() {
    local pid
    pid=$(node_pid "$1" "$2")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

start_node() { # start_node DIR NODE
    local dir=$1 n=$2 pid
    if [ -f "$dir/node-$n/command" ]; then # an old release: its saved command line
        eval "nohup $(cat "$dir/node-$n/command")" >"$dir/node-$n/stdout.log" 2>&1 </dev/null &
        state_set "$dir" "node.$n.pid" $!
        return
    fi
    java_cmd "$dir" "$n" kafka.Kafka "$dir/node-$n/server.properties"
    nohup "${JCMD[@]}" >"$dir/node-$n/stdout.log" 2>&1 </dev/null &
    pid=$!
    state_set "$dir" "node.$n.pid" "$pid"
}

# probe_brokers PORT [VERSION]: prints how many brokers Metadata (v1, or
# VERSION: v0 for brokers before 0.10) at 127.0.0.1:PORT lists.
probe_brokers() {
    python3 - "$1" "${2:-1}" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
version = int(sys.argv[2])
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    client = b"kafka.sh"
    body = struct.pack(">hhih", 3, version, 7, len(client)) + client + struct.pack(">i", 0)
    s.sendall(struct.pack(">i", len(body)) + body)
    def read(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b
    size = struct.unpack(">i", read(4))[0]
    frame = read(size)
    brokers = struct.unpack(">i", frame[4:8])[0]
    # Kafka 0.8.2 lists no broker until a partition has a leader: an
    # answer is all that can be asked of it.
    print(max(brokers, 1) if version == 0 else brokers)
except Exception:
    print(0)
EOF
}

wait_ready() { # wait_ready DIR NODES SECONDS
    local dir=$1 nodes=$2 limit=$3 t0=$SECONDS n ok
    while true; do
        ok=1
        for n in $(seq 1 "$nodes"); do
            if ! node_alive "$dir" "$n"; then
                echo "kafka.sh: node $n exited; the end of its logs:" >&2
                tail -n 30 "$dir/node-$n/stdout.log" "$dir/node-$n/server.log" >&2 2>/dev/null || true
                return 1
            fi
            [ "$(probe_brokers "${PORT_PLAINTEXT[$n]:-$(state_port "$dir" "$n")}" "$(state_get "$dir" probe_version || echo 1)")" -ge "$nodes" ] || ok=0
        done
        [ "$ok" = 1 ] && return 0
        if [ $((SECONDS - t0)) -ge "$limit" ]; then
            echo "kafka.sh: the cluster in $dir did not list $nodes brokers within $limit s" >&2
            return 1
        fi
        sleep 0.5
    done
}

state_port() { local a; a=$(state_get "$1" "node.$2.plaintext"); echo "${a##*:}"; }

# start_legacy DIR VERSION: ZooKeeper and one broker of an old release
# (PLAINTEXT only), with the state file keys of a KRaft cluster plus
# mode=zookeeper and zookeeper.pid.
start_legacy() {
    local dir=$1 version=$2 zk kp t0=$SECONDS heap i probe=1
    zk=$(free_port)
    kp=$(free_port)
    [[ $version =~ ^0\.[89]\. ]] && probe=0
    mkdir -p "$dir/zookeeper" "$dir/node-1/data"
    cat >"$dir/log4j.properties" <<'LOG4J'
# Kafka's own log (log4j 1.x), one file per JVM (kafka.logs.dir), INFO and above.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${kafka.logs.dir}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
LOG4J
    cat >"$dir/node-1/server.properties" <<PROPS
# Written by scripts/kafka.sh for kpax's tests (Kafka $version, ZooKeeper mode).
broker.id=1
port=$kp
host.name=127.0.0.1
advertised.host.name=127.0.0.1
listeners=PLAINTEXT://127.0.0.1:$kp
log.dirs=$dir/node-1/data
zookeeper.connect=127.0.0.1:$zk
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
auto.create.topics.enable=true
delete.topic.enable=true
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
PROPS
    {
        echo "version=$version"
        echo "lib=$(lib_dir "$version")"
        echo "mode=zookeeper"
        echo "probe_version=$probe"
        echo "nodes=1"
        echo "dir=$dir"
        echo "script=$HERE/kafka.sh"
        echo "zookeeper=127.0.0.1:$zk"
        echo "node.1.plaintext=127.0.0.1:$kp"
        echo "node.1.log_dir=$dir/node-1"
        echo "bootstrap.plaintext=127.0.0.1:$kp"
    } >"$dir/state"
    read -r -a heap <<<"${KAFKA_HEAP:--Xms64m -Xmx256m}"
    # Java 11 removed javax.xml.bind, which 0.10 to 1.x use: legacy-pom.xml
    # brings it back; nothing else these releases do on Java 17 needs a flag.
    nohup "$JAVA" -Xmx128m -XX:+UseSerialGC -cp "$(lib_dir "$version")/*" \
        -Dlog4j.configuration="file:$dir/log4j.properties" -Dkafka.logs.dir="$dir/zookeeper" \
        org.apache.zookeeper.server.ZooKeeperServerMain "$zk" "$dir/zookeeper" \
        >"$dir/zookeeper/stdout.log" 2>&1 </dev/null &
    state_set "$dir" zookeeper.pid $!
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$zk") 2>/dev/null && break
        sleep 0.1
    done
    JCMD=("$JAVA" "${heap[@]}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
        -Dkafka.logs.dir="$dir/node-1" -Dlog4j.configuration="file:$dir/log4j.properties"
        -cp "$(lib_dir "$version")/*" kafka.Kafka "$dir/node-1/server.properties")
    printf '%q ' "${JCMD[@]}" >"$dir/node-1/command"
    nohup "${JCMD[@]}" >"$dir/node-1/stdout.log" 2>&1 </dev/null &
    state_set "$dir" node.1.pid $!
    wait_ready "$dir" 1 120 || {
        cmd_stop --dir "$dir" >/dev/null 2>&1 || true
        die "kafka $version did not start"
    }
    echo "kafka $version (ZooKeeper mode): 1 node up in $((SECONDS - t0)) s; state: $dir/state"
    echo "bootstrap=127.0.0.1:$kp"
}

cmd_start() {
    local version=$KAFKA_4 nodes=3 dir=""
    while [ $# -gt 0 ]; do
        case $1 in
        --version) version=${2:?--version needs a value}; shift 2 ;;
        --nodes) nodes=${2:?--nodes needs a value}; shift 2 ;;
        --dir) dir=${2:?--dir needs a value}; shift 2 ;;
        *) die "start: unknown argument $1" ;;
        esac
    done
    [[ $nodes =~ ^[1-9]$ ]] || die "start: --nodes must be 1..9, not $nodes"
    dir=${dir:-${TMPDIR:-/tmp}/kpax-kafka-$version}
    fetch_one "$version"
    if [ -f "$dir/state" ]; then
        cmd_stop --dir "$dir" >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if is_legacy "$version"; then
        [ "$nodes" = 1 ] || die "start: old releases ($version) run as 1 node (--nodes 1)"
        start_legacy "$dir" "$version"
        return
    fi

    declare -gA PORT_PLAINTEXT PORT_SSL PORT_SASL_PLAINTEXT PORT_SASL_SSL PORT_CONTROLLER
    local n voters="" cluster_id
    for n in $(seq 1 "$nodes"); do
        PORT_PLAINTEXT[$n]=$(free_port)
        PORT_SSL[$n]=$(free_port)
        PORT_SASL_PLAINTEXT[$n]=$(free_port)
        PORT_SASL_SSL[$n]=$(free_port)
        PORT_CONTROLLER[$n]=$(free_port)
        voters="${voters:+$voters,}$n@127.0.0.1:${PORT_CONTROLLER[$n]}"
    done
    # A random id that does not start with '-' (kafka-storage would read it
    # as an option; Kafka's own Uuid.randomUuid() skips those too).
    cluster_id=$(python3 -c 'import base64, os
while True:
    s = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break')
    make_certs "$dir" "$nodes"
    write_log4j "$dir"

    local bs_p="" bs_s="" bs_sp="" bs_ss=""
    {
        echo "version=$version"
        echo "lib=$(lib_dir "$version")"
        echo "nodes=$nodes"
        echo "dir=$dir"
        echo "cluster_id=$cluster_id"
        echo "script=$HERE/kafka.sh"
        echo "ca=$dir/tls/ca.pem"
        echo "client_cert=$dir/tls/client.pem"
        echo "client_key=$dir/tls/client.key"
        echo "plain_user=$PLAIN_USER"
        echo "plain_password=$PLAIN_PASSWORD"
        echo "scram_user=$SCRAM_USER"
        echo "scram_password=$SCRAM_PASSWORD"
        for n in $(seq 1 "$nodes"); do
            echo "node.$n.plaintext=127.0.0.1:${PORT_PLAINTEXT[$n]}"
            echo "node.$n.ssl=127.0.0.1:${PORT_SSL[$n]}"
            echo "node.$n.sasl_plaintext=127.0.0.1:${PORT_SASL_PLAINTEXT[$n]}"
            echo "node.$n.sasl_ssl=127.0.0.1:${PORT_SASL_SSL[$n]}"
            echo "node.$n.controller=127.0.0.1:${PORT_CONTROLLER[$n]}"
            echo "node.$n.log_dir=$dir/node-$n"
            bs_p="${bs_p:+$bs_p,}127.0.0.1:${PORT_PLAINTEXT[$n]}"
            bs_s="${bs_s:+$bs_s,}127.0.0.1:${PORT_SSL[$n]}"
            bs_sp="${bs_sp:+$bs_sp,}127.0.0.1:${PORT_SASL_PLAINTEXT[$n]}"
            bs_ss="${bs_ss:+$bs_ss,}127.0.0.1:${PORT_SASL_SSL[$n]}"
        done
        echo "bootstrap.plaintext=$bs_p"
        echo "bootstrap.ssl=$bs_s"
        echo "bootstrap.sasl_plaintext=$bs_sp"
        echo "bootstrap.sasl_ssl=$bs_ss"
    } >"$dir/state"

    local pids=() t0=$SECONDS
    for n in $(seq 1 "$nodes"); do
        mkdir -p "$dir/node-$n/data"
        write_props "$dir" "$n" "$nodes" "$voters"
        java_cmd "$dir" "$n" kafka.tools.StorageTool format -t "$cluster_id" \
            -c "$dir/node-$n/server.properties" \
            --add-scram "SCRAM-SHA-256=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
            --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]"
        "${JCMD[@]}" >"$dir/node-$n/format.log" 2>&1 &
        pids+=($!)
    done
    for n in $(seq 1 "$nodes"); do
        wait "${pids[$((n - 1))]}" || {
            cat "$dir/node-$n/format.log" >&2
            die "formatting node $n failed"
        }
    done
    echo "kafka $version: formatted $nodes nodes in $((SECONDS - t0)) s"
    for n in $(seq 1 "$nodes"); do
        start_node "$dir" "$n"
    done
    wait_ready "$dir" "$nodes" 120 || {
        cmd_stop --dir "$dir" >/dev/null 2>&1 || true
        die "kafka $version did not start"
    }
    echo "kafka $version: $nodes nodes up in $((SECONDS - t0)) s; state: $dir/state"
    echo "KPAX_KAFKA=$dir/state"
    echo "bootstrap=$bs_p"
}

# Waits up to $2 seconds for pid $1 to exit; returns 1 if it did not.
wait_exit() {
    local pid=$1 limit=$2 i
    for i in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

cmd_stop() {
    local dir=""
    while [ $# -gt 0 ]; do
        case $1 in
        --dir) dir=${2:?}; shift 2 ;;
        --version) dir=${TMPDIR:-/tmp}/kpax-kafka-${2:?}; shift 2 ;;
        *) die "stop: unknown argument $1" ;;
        esac
    done
    dir=${dir:-${TMPDIR:-/tmp}/kpax-kafka-$KAFKA_4}
    [ -f "$dir/state" ] || die "stop: no cluster state in $dir"
    local nodes n pid
    nodes=$(state_get "$dir" nodes)
    for n in $(seq 1 "$nodes"); do
        pid=$(node_pid "$dir" "$n")
        [ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    done
    for n in $(seq 1 "$nodes"); do
        pid=$(node_pid "$dir" "$n")
        [ -n "$pid" ] || continue
        wait_exit "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
    done
    pid=$(state_get "$dir" zookeeper.pid || true)
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_exit "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "kafka cluster in $dir stopped"
}

cmd_node() {
    local dir=""
    if [ "${1:-}" = --dir ]; then
        dir=${2:?}
        shift 2
    fi
    local n=${1:?node: which node id} action=${2:?node: which action}
    [ -f "$dir/state" ] || die "node: no cluster state in '$dir'"
    [ -n "$(state_get "$dir" "node.$n.plaintext" || true)" ] || die "node: the cluster in $dir has no node $n"
    local pid
    pid=$(node_pid "$dir" "$n")
    case $action in
    kill) kill -KILL "$pid" 2>/dev/null || true; wait_exit "$pid" 10 ;;
    pause) kill -STOP "$pid" ;;
    resume) kill -CONT "$pid" ;;
    term) kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; wait_exit "$pid" 60 || die "node $n did not stop within 60 s" ;;
    start)
        node_alive "$dir" "$n" && die "node $n is running (pid $pid)"
        start_node "$dir" "$n"
        wait_ready "$dir" "$(state_get "$dir" nodes)" 120 ;;
    alive) node_alive "$dir" "$n" ;;
    *) die "node: unknown action $action (kill, pause, resume, term, start, alive)" ;;
    esac
}

cmd_status() {
    local dir=${TMPDIR:-/tmp}/kpax-kafka-$KAFKA_4
    [ "${1:-}" = --dir ] && dir=${2:?}
    [ -f "$dir/state" ] || die "status: no cluster state in $dir"
    cat "$dir/state"
    local n
    for n in $(seq 1 "$(state_get "$dir" nodes)"); do
        if node_alive "$dir" "$n"; then echo "node $n: alive"; else echo "node $n: not running"; fi
    done
}

case ${1:-} in
fetch)
    shift
    [ $# -gt 0 ] || set -- "$KAFKA_4" "$KAFKA_3"
    if [ "$1" = --legacy ]; then
        # shellcheck disable=SC2086
        set -- $KAFKA_LEGACY
    fi
    for v in "$@"; do fetch_one "$v"; done
    ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
node) shift; cmd_node "$@" ;;
status) shift; cmd_status "$@" ;;
versions) if [ "${2:-}" = --legacy ]; then echo "$KAFKA_LEGACY"; else echo "$KAFKA_4 $KAFKA_3"; fi ;;
*)
    sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [ -n "${1:-}" ] && [ "$1" != help ] && [ "$1" != --help ] && exit 2
    ;;
esac
