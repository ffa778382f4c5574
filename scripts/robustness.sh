#!/usr/bin/env bash
# Robustness run of the analyzer: analyses every crate of the local cargo registry and any
# workspace given as an argument, and counts panics, errors and time. A panic fails the run.
#
# Usage: scripts/robustness.sh [WORKSPACE_DIR ...]
#   FIG_ROBUSTNESS_TIMEOUT  seconds allowed per crate (default 120)
#   FIG_ROBUSTNESS_LOG      where the per-crate lines go (default /tmp/fig-robustness.log)
#
# Each crate gets one line in the log: `ok`, `error` (not a workspace, e.g. a packaged crate
# whose Cargo.toml names files that were not packaged: reported, not a crash), `panic` or
# `timeout`, with the time taken. Large public workspaces are a good addition, checked out
# outside the repository (never committed), e.g. under /tmp.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
timeout_secs="${FIG_ROBUSTNESS_TIMEOUT:-120}"
log="${FIG_ROBUSTNESS_LOG:-/tmp/fig-robustness.log}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

cargo build --quiet --release --manifest-path "$root/Cargo.toml" -p analyzer --example analyze_dir
bin="$target_dir/release/examples/analyze_dir"

dirs=()
for manifest in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/*/Cargo.toml; do
    [ -f "$manifest" ] && dirs+=("$(dirname "$manifest")")
done
dirs+=("$@")

: >"$log"
ok=0 errors=0 panics=0 timeouts=0 modules=0 skipped=0
start_all=$(date +%s.%N)
for dir in "${dirs[@]}"; do
    start=$(date +%s.%N)
    set +e
    output="$(timeout "$timeout_secs" "$bin" "$dir" 2>&1)"
    status=$?
    set -e
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    if [ $status -eq 0 ]; then
        ok=$((ok + 1))
        modules=$((modules + $(sed -n 's/.* modules=\([0-9]*\).*/\1/p' <<<"$output" | head -1)))
        skipped=$((skipped + $(sed -n 's/.* skipped=\([0-9]*\).*/\1/p' <<<"$output" | head -1)))
        echo "ok      ${elapsed}s $dir $output" >>"$log"
    elif [ $status -eq 124 ]; then
        timeouts=$((timeouts + 1))
        echo "timeout ${elapsed}s $dir" >>"$log"
    elif [ $status -eq 2 ]; then
        errors=$((errors + 1))
        echo "error   ${elapsed}s $dir $(head -1 <<<"$output")" >>"$log"
    else
        panics=$((panics + 1))
        echo "panic   ${elapsed}s $dir (exit $status) $(tr '\n' ' ' <<<"$output" | cut -c1-400)" >>"$log"
    fi
done
total=$(echo "$(date +%s.%N) - $start_all" | bc)

echo "analysed ${#dirs[@]} crates/workspaces in ${total}s: $ok ok ($modules modules, $skipped skipped files), $errors errors, $panics panics, $timeouts timeouts"
echo "slowest:"
awk '{print $2, $3}' "$log" | sort -g -r | head -5 | sed 's/^/  /'
echo "details: $log"
[ "$panics" -eq 0 ] && [ "$timeouts" -eq 0 ]
