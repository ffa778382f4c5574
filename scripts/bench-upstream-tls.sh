#!/usr/bin/env bash
# The cost of TLS and HTTP/2 to upstreams (issue 16): one `fig proxy` in front of one NGINX that
# serves the same tiny answer in cleartext HTTP/1.1, over TLS with HTTP/1.1 and over TLS with
# HTTP/2 (ALPN). wrk drives the proxy over keep-alive HTTP/1.1 in rounds that alternate the three
# upstreams, so the three are measured side by side in one run; per round it prints requests per
# second and the proxy's CPU time per request (utime + stime from /proc, in microseconds).
#
# usage: scripts/bench-upstream-tls.sh [FIG_BINARY] [SECONDS_PER_RUN] [ROUNDS] [CONNECTIONS]
# needs: nginx (with http2), openssl, wrk, python3. Everything listens on 127.0.0.1 only.
set -euo pipefail

fig=$(realpath "${1:-target/release/fig}")
seconds=${2:-5}
rounds=${3:-5}
connections=${4:-16}
work=$(mktemp -d)
trap 'kill $(cat "$work"/nginx.pid 2>/dev/null) 2>/dev/null || true; kill "$fig_pid" 2>/dev/null || true; cat "$work"/fig.err >&2; rm -rf "$work"' EXIT
fig_pid=

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr \
    -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" > ext.cnf
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 \
    -extfile ext.cnf 2>/dev/null

tls_port=$(free_port)
plain_port=$(free_port)
proxy_port=$(free_port)
cat > nginx.conf <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events {}
http {
  access_log off;
  server {
    listen 127.0.0.1:$tls_port ssl http2;
    ssl_certificate $work/leaf.pem;
    ssl_certificate_key $work/leaf.key;
    keepalive_requests 1000000;
    location / { return 200 "hello\n"; }
  }
  server {
    listen 127.0.0.1:$plain_port;
    keepalive_requests 1000000;
    location / { return 200 "hello\n"; }
  }
}
EOF
nginx -c "$work/nginx.conf" -p "$work" &
cat > fig.toml <<EOF
[server]
listen = "127.0.0.1:$proxy_port"
workers = 1
[admin]
listen = "off"
[reload]
watch = false
[upstreams.monolith]
addresses = ["http://127.0.0.1:$plain_port"]
[upstreams.tls-h1]
addresses = ["https://127.0.0.1:$tls_port"]
tls = { ca = "ca.pem" }
[upstreams.tls-h2]
addresses = ["https://127.0.0.1:$tls_port"]
protocol = "h2"
tls = { ca = "ca.pem" }
[[routes]]
name = "tls-h1"
match = { prefix = "/tls-h1" }
service = "tls-h1"
[[routes]]
name = "tls-h2"
match = { prefix = "/tls-h2" }
service = "tls-h2"
EOF
"$fig" proxy --config fig.toml > fig.out 2> fig.err &
fig_pid=$!
for _ in $(seq 50); do
    grep -q listening fig.out 2>/dev/null && break
    sleep 0.1
done
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$fig_pid/stat"; }

echo "| round | upstream | requests/s | fig CPU µs/request |"
echo "|---|---|---|---|"
for round in $(seq "$rounds"); do
    for path in /plain /tls-h1/x /tls-h2/x; do
        before=$(cpu)
        out=$(wrk -t1 -c"$connections" -d"${seconds}s" "http://127.0.0.1:$proxy_port$path")
        after=$(cpu)
        requests=$(echo "$out" | awk '/requests in/ {print $1}')
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
        us=$(python3 -c "print(round(($after - $before) / $ticks * 1e6 / $requests, 1))")
        echo "| $round | ${path%/x} | $rps | $us |${errors:+ non-2xx: $errors}"
    done
done
