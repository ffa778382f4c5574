#!/usr/bin/env bash
# Loopback load test of `fig proxy` against a direct run, NGINX and HAProxy, with the shared bench
# (../shared/bench/proxy/run.sh, or $FIG_SHARED_DIR/bench/proxy/run.sh).
#
# Fig runs with one worker (as NGINX and HAProxy do there) and evaluates a flag on every request:
# its config has one catch-all route whose flag, in the embedded file store, is on, so each request
# is matched, its flag evaluated, and sent to the upstream named by the decision.
#
# Usage:
#   scripts/bench-proxy.sh [run.sh options]     e.g. --rounds 3 --duration 5s
#
# Installs nginx, haproxy, wrk and curl with apt-get when they are missing (needs root or sudo),
# builds `fig` with the `release-lto` profile, the build to ship (into $CARGO_TARGET_DIR, else
# target/; the first build takes several minutes), and writes the results to
# results/proxy-<time>/ (summary.md is the table to read; ratios.md has fig's per-round ratios to
# each peer, see scripts/bench-ratios.py). FIG_BIN=PATH benches that binary
# instead, without building. FIG_COMPARE="NAME=PATH ..." adds other fig binaries (say, a build of
# the previous commit) to the same run, with the same config, on ports 18084 and up.
# FIG_NGINX_FORWARDING=1 adds `nginx-fwd` on the next port: NGINX setting the forwarding fields
# fig sets (X-Forwarded-*, Via, a field naming the upstream), for a like-for-like comparison.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${FIG_SHARED_DIR:-$ROOT/../shared}
BENCH=$SHARED/bench/proxy
die() { echo "error: $*" >&2; exit 2; }

[ -x "$BENCH/run.sh" ] || die "no bench at $BENCH/run.sh; set FIG_SHARED_DIR to the directory holding bench/proxy"

missing=()
for tool in nginx haproxy wrk curl; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt-get" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -n "${FIG_BIN:-}" ]; then
  FIG=$FIG_BIN
else
  echo "building fig (profile release-lto)" >&2
  (cd "$ROOT" && cargo build --profile release-lto --quiet -p fig)
  FIG=${CARGO_TARGET_DIR:-$ROOT/target}/release-lto/fig
fi
case "$FIG" in /*) ;; *) FIG=$ROOT/$FIG ;; esac
[ -x "$FIG" ] || die "no fig binary at $FIG after the build"

WORK=$(mktemp -d /tmp/fig-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
UPSTREAM_PORT=${UPSTREAM_PORT:-18080}
"$FIG" flags --store "$WORK/flags.json" create bench --description "evaluated on every request" >/dev/null
"$FIG" flags --store "$WORK/flags.json" enable bench >/dev/null
# The route's service and fallback are both the bench's upstream, under two names: every request
# goes through the whole decision (match, flag evaluation, pick) and the answer stays `hello`.
cat > "$WORK/fig-proxy.toml" <<EOF
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

[flags]
file = "flags.json"

[admin]
listen = "off"

[reload]
watch = false
EOF
"$FIG" proxy --config "$WORK/fig-proxy.toml" --check >/dev/null

OUT=$ROOT/results/proxy-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
cp "$WORK/fig-proxy.toml" "$OUT/fig-proxy.toml"
proxy_args="proxy --config $WORK/fig-proxy.toml --listen 127.0.0.1:\$LISTEN_PORT --monolith http://127.0.0.1:\$UPSTREAM_PORT --workers 1"
targets=(--target-cmd fig=18083 "$FIG $proxy_args")
port=18084
for other in ${FIG_COMPARE:-}; do
  [[ "$other" =~ ^([A-Za-z0-9_-]+)=(.+)$ ]] || die "FIG_COMPARE wants NAME=PATH, got $other"
  [ -x "${BASH_REMATCH[2]}" ] || die "no fig binary at ${BASH_REMATCH[2]}"
  targets+=(--target-cmd "${BASH_REMATCH[1]}=$port" "${BASH_REMATCH[2]} $proxy_args")
  port=$((port + 1))
done
# FIG_NGINX_FORWARDING=1: one more NGINX, `nginx-fwd`, doing the per-request work fig does and the
# bench's NGINX does not (see scripts/nginx-forwarding-conf.sh). The bench's own NGINX stays as it is.
if [ "${FIG_NGINX_FORWARDING:-0}" = 1 ]; then
  fwd=$WORK/nginx-fwd
  mkdir -p "$fwd"
  "$ROOT/scripts/nginx-forwarding-conf.sh" "$BENCH/proxy-nginx.conf" "$fwd" "$UPSTREAM_PORT" "$port" > "$fwd/nginx.conf"
  nginx -t -q -p "$fwd" -e "$fwd/error.log" -c "$fwd/nginx.conf" || die "the forwarding NGINX config does not load"
  cp "$fwd/nginx.conf" "$OUT/nginx-fwd.conf"
  targets+=(--target-cmd "nginx-fwd=$port" "nginx -p $fwd -e $fwd/error.log -c $fwd/nginx.conf")
  port=$((port + 1))
fi
"$BENCH/run.sh" --out "$OUT" "$@" "${targets[@]}"
# Fig against each peer round by round (the rounds are paired): the ratios to report.
python3 "$ROOT/scripts/bench-ratios.py" "$OUT" --out "$OUT/ratios.md" >/dev/null
echo "summary: $OUT/summary.md" >&2
echo "ratios:  $OUT/ratios.md (pool runs: scripts/bench-ratios.py results/proxy-A results/proxy-B ...)" >&2
