#!/usr/bin/env bash
# Kafka protocol pages for any release, made from that release's Java client.
#
#   scripts/kafka-pages.sh [--dir D] VERSION...     write D/VERSION/protocol.html (+ generated/)
#   scripts/kafka-pages.sh [--dir D] --check VERSION...
#                                                   ... and, for each page, scrape it, generate
#                                                   kpax-proto from it in a scratch copy, build it
#                                                   and run its tests; one line per release
#   scripts/kafka-pages.sh --list                   the releases this script is known to cover
#
# The generated parts of Kafka's protocol page are printed by main classes of
# org.apache.kafka:kafka-clients (Kafka's own site build runs the same ones):
#   org.apache.kafka.common.protocol.Protocol     -> generated/protocol_messages.html
#   org.apache.kafka.common.protocol.ApiKeys      -> generated/protocol_api_keys.html
#   org.apache.kafka.common.protocol.Errors       -> generated/protocol_errors.html
#   org.apache.kafka.common.protocol.types.Type   -> generated/protocol_types.html (2.0 onwards;
#                                                    older clients have no such main)
# The jar comes from Maven Central (mvn). protocol.html includes the parts with
# <!--#include virtual="generated/..."--> as the site's page does. The pages are
# Kafka's documentation: they go, with the jar's message schemas
# (common/message/*.json, where it has them), to a cache folder (default
# ~/.cache/kpax/kafka-protocol, or $KPAX_PAGES), never into the repository.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${KPAX_PAGES:-$HOME/.cache/kpax/kafka-protocol}
LIBS=${KPAX_TOOLS:-$HOME/.local/kpax-tools}/kafka-clients
RELEASES="0.10.2.2 0.11.0.3 1.1.1 2.0.1 2.4.1 2.8.2 3.0.2 3.5.2 3.9.2 4.0.1 4.1.2 4.4.0"
CHECK=0

die() { echo "kafka-pages: $*" >&2; exit 1; }

fetch_client() { # fetch_client VERSION: the lib folder holding that release's kafka-clients
    local v=$1 lib="$LIBS-$1"
    if ! ls "$lib"/kafka-clients-"$v".jar >/dev/null 2>&1; then
        command -v mvn >/dev/null || die "mvn is not installed (apt-get install -y maven)"
        echo "kafka-clients $v: resolving from Maven Central into $lib" >&2
        mkdir -p "$lib"
        mvn -q -B -f "$ROOT/scripts/kafka-pages/pom.xml" -Dkafka.version="$v" \
            dependency:copy-dependencies -DoutputDirectory="$lib" >&2 ||
            die "mvn could not resolve org.apache.kafka:kafka-clients:$v"
    fi
    echo "$lib"
}

write_page() { # write_page VERSION
    local v=$1 lib out part
    lib=$(fetch_client "$v")
    out="$DIR/$v"
    mkdir -p "$out/generated"
    command -v java >/dev/null || die "java is not installed"
    for part in Protocol:messages ApiKeys:api_keys Errors:errors types.Type:types; do
        local class=${part%%:*} name=${part#*:}
        local file="$out/generated/protocol_$name.html"
        if java -cp "$lib/*" "org.apache.kafka.common.protocol.$class" >"$file.tmp" 2>"$out/$name.err"; then
            mv "$file.tmp" "$file"
        elif [[ $class == types.Type ]] && grep -q "Main method not found" "$out/$name.err"; then
            rm -f "$file.tmp" "$file" # before 2.0: no types table on the page
        else
            die "$v: org.apache.kafka.common.protocol.$class failed: $(head -c 300 "$out/$name.err")"
        fi
        rm -f "$out/$name.err"
    done
    # Kafka's own message schemas, where the jar carries them (common/message/*.json):
    # the independent source the tagged-field cross-check compares with.
    if command -v jar >/dev/null; then
        rm -rf "$out/common"
        (cd "$out" && jar xf "$lib/kafka-clients-$v.jar" common/message) || true
    fi
    {
        echo "<!-- Kafka $v protocol page: the generated parts printed by kafka-clients $v,"
        echo "     included as kafka.apache.org's protocol.html includes them. -->"
        echo "<html><body>"
        echo "<h1>Kafka protocol guide (Kafka $v)</h1>"
        if [[ -f $out/generated/protocol_types.html ]]; then
            echo '<h5><a id="protocol_types"></a>Protocol Primitive Types</h5>'
            echo '<!--#include virtual="generated/protocol_types.html" -->'
        fi
        echo '<h5><a id="protocol_error_codes"></a>Error Codes</h5>'
        echo '<!--#include virtual="generated/protocol_errors.html" -->'
        echo '<h5><a id="protocol_api_keys"></a>Api Keys</h5>'
        echo '<!--#include virtual="generated/protocol_api_keys.html" -->'
        echo '<h4><a id="protocol_messages"></a>The Messages</h4>'
        echo '<!--#include virtual="generated/protocol_messages.html" -->'
        echo "</body></html>"
    } >"$out/protocol.html"
    echo "$out/protocol.html"
}

check_page() { # check_page VERSION PAGE: scrape, generate and test kpax-proto in a scratch copy
    local v=$1 page=$2 scratch
    # A scratch folder of its own (two checks at once must not share one).
    if [ -n "${KPAX_PAGES_SCRATCH:-}" ]; then
        scratch=$KPAX_PAGES_SCRATCH
        rm -rf "$scratch" && mkdir -p "$scratch"
    else
        scratch=$(mktemp -d "${TMPDIR:-/tmp}/kpax-pages-check.XXXXXX")
    fi
    # The scratch workspace: the real one's crates, with spec/ and kpax-proto/ copied so that
    # generating there touches nothing here. It shares the target folder to reuse builds.
    cp -r "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" "$ROOT/spec" "$ROOT/kpax-proto" "$ROOT/wipro-gen" "$scratch/"
    mkdir -p "$scratch/pkgs"
    cat >"$scratch/Cargo.toml" <<TOML
[workspace]
resolver = "2"
members = ["kpax-proto", "wipro-gen"]
$(awk '/^\[workspace\.package\]/ {p = 1} /^\[package\]/ || /^# The root package/ {p = 0} p' "$ROOT/Cargo.toml")
TOML
    local target=${CARGO_TARGET_DIR:-$ROOT/target}/pages
    local log="$scratch/check.log" t0=$SECONDS summary
    if ! summary=$(cd "$scratch" && CARGO_TARGET_DIR=$target cargo run -q -p wipro-gen -- --root "$scratch" scrape --html "$page" 2>>"$log"); then
        echo "$v: FAIL scrape: $(tail -n 3 "$log" | tr '\n' ' ')"; return 1
    fi
    if ! (cd "$scratch" && CARGO_TARGET_DIR=$target cargo run -q -p wipro-gen -- --root "$scratch" generate >>"$log" 2>&1); then
        echo "$v: FAIL generate: $(grep -m1 'wipro-gen:' "$log")"; return 1
    fi
    # Tests that name the committed protocol's messages are left out (kpax_other_page);
    # the round trip of every message, version and header runs, with the records tests.
    if ! (cd "$scratch" && CARGO_TARGET_DIR=$target RUSTFLAGS="--cfg kpax_other_page" \
        cargo test -q -p kpax-proto --lib >>"$log" 2>&1); then
        echo "$v: FAIL kpax-proto build or tests (log: $log): $(grep -m1 -E '^error|FAILED|panicked' "$log")"; return 1
    fi
    local passed
    passed=$(grep -oE '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
    if [ "$passed" -eq 0 ]; then
        echo "$v: FAIL no kpax-proto test ran (log: $log)"; return 1
    fi
    echo "$v: ok: $summary; kpax-proto built and $passed tests passed ($((SECONDS - t0)) s)"
    if [ -z "${KPAX_PAGES_SCRATCH:-}" ]; then
        rm -rf "$scratch"
    fi
}

versions=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --dir) DIR=$2; shift 2 ;;
    --check) CHECK=1; shift ;;
    --list) echo "$RELEASES"; exit 0 ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) die "unknown flag $1" ;;
    *) versions+=("$1"); shift ;;
    esac
done
[[ ${#versions[@]} -gt 0 ]] || die "name the releases (e.g. $RELEASES), or see --help"
failed=0
for v in "${versions[@]}"; do
    [[ $v =~ ^[0-9]+(\.[0-9]+)+$ ]] || die "not a release number: $v"
    page=$(write_page "$v")
    if [[ $CHECK == 1 ]]; then
        check_page "$v" "$page" || failed=$((failed + 1))
    else
        echo "$v: $page"
    fi
done
[[ $failed == 0 ]] || die "$failed of ${#versions[@]} releases failed"
