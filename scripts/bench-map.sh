#!/usr/bin/env bash
# How fast the HTML report's map becomes usable in a real browser, and how big the file is, on
# the reports `tests/browser.rs` writes: the shop, the generated 2,000-module workspace and tokio
# from the local cargo registry (issue 19).
#
# Usage: scripts/bench-map.sh [RUNS]     (default 10 runs per report)
#   CHROME   the Chromium binary (default: chromium on the PATH)
#
# It runs the browser tests once (which write target/tmp/browser/*-report.html), then opens each
# report RUNS times in a fresh headless Chromium (`--dump-dom`) and reads `data-ready-ms` from the
# page: the milliseconds from the start of navigation to the moment the map's script has parsed
# the embedded JSON, built its model and drawn the tree, the graph and the focus panel (it sets
# the attribute as its last step; clicks work from then on). The browser's own start is not
# included. Prints min / median / max per report. The machine is shared: run it twice and
# compare before trusting a difference under ~20 %.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-10}"
chrome="${CHROME:-chromium}"
out="${CARGO_TARGET_DIR:-$root/target}/tmp/browser"

(cd "$root" && cargo test --quiet --test main browser:: >/dev/null)

printf '%-10s %10s %8s %8s %8s %8s\n' report bytes modules min_ms median_ms max_ms
for name in shop tokio synthetic; do
    file="$out/$name-report.html"
    [ -f "$file" ] || { echo "$name: no report at $file (no tokio in the registry?)" >&2; continue; }
    bytes=$(stat -c %s "$file")
    modules=$(grep -o '"parent":' "$file" | wc -l)
    times=()
    for _ in $(seq "$runs"); do
        ms=$("$chrome" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --dump-dom \
            "file://$file" 2>/dev/null | grep -o 'data-ready-ms="[0-9]*"' | grep -o '[0-9]*' || true)
        [ -n "$ms" ] && times+=("$ms")
    done
    [ "${#times[@]}" -gt 0 ] || { echo "$name: the map never became ready" >&2; exit 1; }
    sorted=($(printf '%s\n' "${times[@]}" | sort -n))
    n=${#sorted[@]}
    printf '%-10s %10s %8s %8s %8s %8s\n' "$name" "$bytes" "$modules" "${sorted[0]}" \
        "${sorted[$((n / 2))]}" "${sorted[$((n - 1))]}"
done
