#!/usr/bin/env bash
# What shadow traffic costs the client: `fig proxy` with and without a route that copies 100% of
# its requests, in the same run of the shared loopback bench (../shared/bench/proxy/run.sh, or
# $FIG_SHARED_DIR/bench/proxy/run.sh), rounds interleaved.
#
# Both proxies run with one worker and the same catch-all route, whose flag (in the embedded file
# store) is on, so the service answers. `fig-shadow` also has `shadow = {}` on the route: every
# GET is copied to the fallback, and both answers are compared. Service and fallback are the
# bench's one upstream under two names, so the copy doubles that upstream's load; the answers
# (`hello`) are equal, so every comparison runs to the end.
#
# Usage:
#   scripts/bench-shadow.sh [run.sh options]     e.g. --rounds 3 --duration 5s
#   Ports (env): UPSTREAM_PORT=18080 FIG_PORT=18083 FIG_SHADOW_PORT=18084
#
# Needs nginx, wrk and curl (scripts/bench-proxy.sh installs them); builds `fig` in release (into
# $CARGO_TARGET_DIR, else target/), and writes the results to results/shadow-<time>/.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${FIG_SHARED_DIR:-$ROOT/../shared}
BENCH=$SHARED/bench/proxy
die() { echo "error: $*" >&2; exit 2; }

[ -x "$BENCH/run.sh" ] || die "no bench at $BENCH/run.sh; set FIG_SHARED_DIR to the directory holding bench/proxy"
for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || die "$tool not found; scripts/bench-proxy.sh installs it"
done

echo "building fig (release)" >&2
(cd "$ROOT" && cargo build --release --quiet -p fig)
FIG=${CARGO_TARGET_DIR:-$ROOT/target}/release/fig
case "$FIG" in /*) ;; *) FIG=$ROOT/$FIG ;; esac
[ -x "$FIG" ] || die "no fig binary at $FIG after the build"

WORK=$(mktemp -d /tmp/fig-bench-shadow.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
UPSTREAM_PORT=${UPSTREAM_PORT:-18080}
export UPSTREAM_PORT
FIG_PORT=${FIG_PORT:-18083}
FIG_SHADOW_PORT=${FIG_SHADOW_PORT:-18084}
"$FIG" flags --store "$WORK/flags.json" create bench --description "evaluated on every request" >/dev/null
"$FIG" flags --store "$WORK/flags.json" enable bench >/dev/null
write_config() { # file, extra route line
  cat > "$1" <<EOF
[upstreams.monolith]
addresses = ["http://127.0.0.1:$UPSTREAM_PORT"]

[upstreams.service]
addresses = ["http://127.0.0.1:$UPSTREAM_PORT"]

[[routes]]
name = "everything"
match = { prefix = "/" }
service = "service"
flag = "bench"
fallback = "monolith"
$2

[flags]
file = "flags.json"

[admin]
listen = "off"

[reload]
watch = false
EOF
  "$FIG" proxy --config "$1" --check >/dev/null
}
write_config "$WORK/plain.toml" ""
write_config "$WORK/shadow.toml" "shadow = { percent = 100 }"

OUT=$ROOT/results/shadow-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
cp "$WORK/plain.toml" "$WORK/shadow.toml" "$OUT/"
"$BENCH/run.sh" --out "$OUT" --no-nginx --no-haproxy "$@" \
  --target-cmd fig=$FIG_PORT \
  "$FIG proxy --config $WORK/plain.toml --listen 127.0.0.1:\$LISTEN_PORT --workers 1" \
  --target-cmd fig-shadow=$FIG_SHADOW_PORT \
  "$FIG proxy --config $WORK/shadow.toml --listen 127.0.0.1:\$LISTEN_PORT --workers 1"
echo "summary: $OUT/summary.md" >&2
