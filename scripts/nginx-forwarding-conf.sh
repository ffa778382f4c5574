#!/usr/bin/env bash
# Prints the shared bench's NGINX proxy config (bench/proxy/proxy-nginx.conf) made to do the
# per-request work fig does and that config does not: X-Forwarded-For/-Proto/-Host and Via towards
# the upstream, Via and a field naming the upstream (X-Upstream) towards the client. It is the
# `nginx-fwd` target of scripts/bench-proxy.sh (FIG_NGINX_FORWARDING=1): the like-for-like peer.
#
# Usage: scripts/nginx-forwarding-conf.sh TEMPLATE RUN_DIR UPSTREAM_PORT LISTEN_PORT > nginx.conf
# fills in the template's placeholders (@RUN@, @UPSTREAM_PORT@, @NGINX_PORT@) as the bench's
# run.sh does, and adds the fields after its `proxy_set_header Host $host;` line.
set -euo pipefail
die() { echo "error: $*" >&2; exit 2; }

[ $# = 4 ] || die "usage: $0 TEMPLATE RUN_DIR UPSTREAM_PORT LISTEN_PORT"
template=$1 run=$2 upstream_port=$3 listen_port=$4
[ -f "$template" ] || die "no NGINX config template at $template"
for port in "$upstream_port" "$listen_port"; do
  [[ "$port" =~ ^[0-9]+$ ]] || die "a port is a number, got '$port'"
done
hook='proxy_set_header Host $host;'
grep -qF "$hook" "$template" || die "$template has no '$hook' line to add the forwarding fields after"

sed -e "s|@RUN@|$run|g" -e "s|@UPSTREAM_PORT@|$upstream_port|g" -e "s|@NGINX_PORT@|$listen_port|g" \
  -e 's|proxy_set_header Host \$host;|&\
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\
            proxy_set_header X-Forwarded-Proto $scheme;\
            proxy_set_header X-Forwarded-Host $http_host;\
            proxy_set_header Via "1.1 nginx";\
            add_header Via "1.1 nginx" always;\
            add_header X-Upstream $upstream_addr always;|' \
  "$template"
