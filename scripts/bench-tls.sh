#!/usr/bin/env bash
# TLS at the proxy's edge, fig beside NGINX, on loopback: keep-alive requests per second over TLS,
# and new TLS handshakes per second (every request on a new connection, `Connection: close`).
#
# Both proxies are configured alike: one worker, TLS 1.3 only, the same ECDSA P-256 certificate,
# HTTP/1.1 keep-alive to the clients, a keep-alive pool to the same upstream (NGINX returning a
# fixed "hello\n", as in ../shared/bench/proxy). Each round runs every (workload, proxy) pair once,
# the order of the proxies alternating, so each round is a paired comparison on the machine as it
# was then; scripts/bench-ratios.py pools the rounds into median ratios with a bootstrap interval.
# Proxy CPU per request comes from the proxy process's utime+stime around each run.
#
# Usage:
#   FIG_BIN=target/release/fig scripts/bench-tls.sh [--rounds N] [--duration 5s] [--conns 32]
#
# Writes results/tls-<time>/{keepalive,handshake}/raw.csv and ratios.md (one table per workload).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=5
DURATION=5s
CONNS=32
UPSTREAM_PORT=${UPSTREAM_PORT:-18280}
NGINX_PORT=${NGINX_PORT:-18281}
FIG_PORT=${FIG_PORT:-18282}
die() { echo "error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
FIG=${FIG_BIN:-$ROOT/target/release/fig}
[ -x "$FIG" ] || die "no fig binary at $FIG (cargo build --release, or set FIG_BIN)"
for tool in nginx wrk openssl curl; do command -v $tool >/dev/null || die "$tool not found"; done

OUT=$ROOT/results/tls-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT/keepalive" "$OUT/handshake"
RUN=$(mktemp -d /tmp/fig-bench-tls.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_RUN:-}" ] || rm -rf "$RUN"
}
trap cleanup EXIT

# One certificate for both: a CA and a leaf for 127.0.0.1 and localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout "$RUN/ca.key" -out "$RUN/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
  -keyout "$RUN/key.pem" -out "$RUN/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$RUN/ext.cnf"
openssl x509 -req -in "$RUN/leaf.csr" -CA "$RUN/ca.pem" -CAkey "$RUN/ca.key" -CAcreateserial \
  -days 2 -extfile "$RUN/ext.cnf" -out "$RUN/cert.pem" 2>/dev/null

common_http='access_log off; keepalive_requests 100000000; keepalive_timeout 65s;'
temp_paths() { echo "client_body_temp_path $RUN/$1_body; proxy_temp_path $RUN/$1_proxy; fastcgi_temp_path $RUN/$1_fcgi; uwsgi_temp_path $RUN/$1_uwsgi; scgi_temp_path $RUN/$1_scgi;"; }
cat > "$RUN/upstream.conf" <<EOF
worker_processes 1; daemon off; pid $RUN/upstream.pid; error_log $RUN/upstream.err warn;
events { worker_connections 4096; }
http { $common_http $(temp_paths up)
  server { listen 127.0.0.1:$UPSTREAM_PORT reuseport backlog=4096;
    location / { default_type text/plain; return 200 "hello\n"; } } }
EOF
cat > "$RUN/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $RUN/nginx.pid; error_log $RUN/nginx.err warn;
events { worker_connections 4096; }
http { $common_http $(temp_paths px)
  upstream monolith { server 127.0.0.1:$UPSTREAM_PORT; keepalive 64; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl reuseport backlog=4096;
    ssl_certificate $RUN/cert.pem;
    ssl_certificate_key $RUN/key.pem;
    ssl_protocols TLSv1.3;
    location / {
      proxy_pass http://monolith; proxy_http_version 1.1;
      proxy_set_header Connection ""; proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-Proto https;
    } } }
EOF
nginx -c "$RUN/upstream.conf" -p "$RUN" >"$RUN/upstream.out" 2>&1 & PIDS+=($!)
nginx -c "$RUN/nginx.conf" -p "$RUN" >"$RUN/nginx.out" 2>&1 & PIDS+=($!)
NGINX_PID=$!
# fig: TLS 1.3 and 1.2 offered (rustls); wrk's OpenSSL picks 1.3, as with NGINX.
"$FIG" proxy --workers 1 --listen 127.0.0.1:$FIG_PORT --monolith http://127.0.0.1:$UPSTREAM_PORT \
  --admin 127.0.0.1:0 --tls-cert "$RUN/cert.pem" --tls-key "$RUN/key.pem" \
  --state-file "$RUN/fig.state.json" >"$RUN/fig.out" 2>"$RUN/fig.err" & PIDS+=($!)
FIG_PID=$!

for port in $UPSTREAM_PORT $NGINX_PORT $FIG_PORT; do
  scheme=https; [ $port = $UPSTREAM_PORT ] && scheme=http
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 --cacert "$RUN/ca.pem" "$scheme://127.0.0.1:$port/" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null --cacert "$RUN/ca.pem" "$scheme://127.0.0.1:$port/" || die "nothing answers on $port (see $RUN)"
done
for port in $NGINX_PORT $FIG_PORT; do
  version=$(curl -sS -o /dev/null -w '%{ssl_version}' --cacert "$RUN/ca.pem" "https://127.0.0.1:$port/" 2>/dev/null || true)
  echo "127.0.0.1:$port answers over TLS ${version:-(curl does not say the version)}" >&2
done

ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12+$13}'; }
CLK_TCK=$(getconf CLK_TCK)
# nginx's worker is the busy process: count the master's children too.
nginx_ticks() { local total; total=$(ticks "$NGINX_PID"); for c in $(pgrep -P "$NGINX_PID"); do total=$((total + $(ticks "$c"))); done; echo "$total"; }
fig_ticks() { ticks "$FIG_PID"; }

header='round,conns,target,rps,p50_us,p90_us,p99_us,proxy_cpu_us_per_req'
echo "$header" > "$OUT/keepalive/raw.csv"
echo "$header" > "$OUT/handshake/raw.csv"

run_one() { # workload round target port ticks-fn
  local workload=$1 round=$2 target=$3 port=$4 ticks_fn=$5 extra=() before after out rps reqs cpu
  [ "$workload" = handshake ] && extra=(-H "Connection: close")
  before=$($ticks_fn)
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${extra[@]}" "https://127.0.0.1:$port/" 2>&1)
  after=$($ticks_fn)
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  local errors; errors=$(awk '/Socket errors|Non-2xx/ {print}' <<<"$out")
  [ -n "$errors" ] && echo "  $workload $target: $errors" >&2
  cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "" }')
  lat() { awk -v p="$1" '$1 == p {v=$2; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else if (v ~ /s$/) {sub(/s/,"",v); print v*1e6}}' <<<"$out"; }
  echo "$round,$CONNS,$target,$rps,$(lat 50%),$(lat 90%),$(lat 99%),$cpu" >> "$OUT/$workload/raw.csv"
  echo "round $round $workload $target: $rps req/s, ${cpu} us CPU/req" >&2
}

# Warm-up.
wrk -t1 -c"$CONNS" -d2s "https://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1
wrk -t1 -c"$CONNS" -d2s "https://127.0.0.1:$FIG_PORT/" >/dev/null 2>&1
for round in $(seq "$ROUNDS"); do
  for workload in keepalive handshake; do
    if [ $((round % 2)) = 1 ]; then
      run_one $workload "$round" fig $FIG_PORT fig_ticks
      run_one $workload "$round" nginx $NGINX_PORT nginx_ticks
    else
      run_one $workload "$round" nginx $NGINX_PORT nginx_ticks
      run_one $workload "$round" fig $FIG_PORT fig_ticks
    fi
  done
done
{
  echo "## Keep-alive requests over TLS 1.3"; echo
  python3 "$ROOT/scripts/bench-ratios.py" "$OUT/keepalive"
  echo; echo "## New TLS 1.3 handshakes (one request per connection)"; echo
  python3 "$ROOT/scripts/bench-ratios.py" "$OUT/handshake"
} > "$OUT/ratios.md"
echo "results in $OUT (ratios.md)" >&2
