#!/bin/sh
# Does the generated trait code compile? `fig suggest --emit` on each workspace, then
# `cargo check --offline --keep-going` on each emitted workspace; prints every failure and the
# counts: workspaces, those with suggestions, generated crates that compile out of all.
#
# Usage: templates/scripts/emit-compiles.sh [DIR...]
#   With no DIR: every registry crate of this project's own dependency tree (from
#   `cargo metadata`), the corpus docs/benchmarks.md reports on.
# Environment: FIG (default target/debug/fig), LIMIT (at most this many workspaces),
#   CHECK_TIMEOUT (seconds per `cargo check`, default 600), KEEP (a directory to keep the
#   emitted workspaces in instead of a temporary one).
set -u
fig=${FIG:-target/debug/fig}
limit=${LIMIT:-100000}
check_timeout=${CHECK_TIMEOUT:-600}
if [ -n "${KEEP:-}" ]; then
    work=$KEEP
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
if [ "$#" -eq 0 ]; then
    # The registry packages the project builds with: their manifest directories.
    set -- $(cargo metadata --format-version 1 --offline 2>/dev/null | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
for package in sorted(meta["packages"], key=lambda p: (p["name"], p["version"])):
    if (package.get("source") or "").startswith("registry+"):
        print(os.path.dirname(package["manifest_path"]))
')
fi
n=0
with_suggestions=0
crates_ok=0
crates_all=0
for dir in "$@"; do
    [ "$n" -ge "$limit" ] && break
    n=$((n + 1))
    out="$work/emit-$n"
    if ! timeout 300 "$fig" suggest "$dir" --emit "$out" >/dev/null 2>"$work/err"; then
        echo "== fig suggest failed on $dir: $(head -c 300 "$work/err")"
        continue
    fi
    members=$(grep -c '^    "' "$out/Cargo.toml" 2>/dev/null)
    [ "${members:-0}" -gt 0 ] || continue
    with_suggestions=$((with_suggestions + 1))
    crates_all=$((crates_all + members))
    CARGO_TARGET_DIR="$work/target" timeout "$check_timeout" cargo check --offline --keep-going \
        --message-format short --manifest-path "$out/Cargo.toml" >"$work/check" 2>&1
    status=$?
    failed=$(grep -c '^error: could not compile' "$work/check")
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        # Not one crate was checked: the workspace did not resolve (or the check timed out).
        failed=$members
    fi
    crates_ok=$((crates_ok + members - failed))
    if [ "$status" -ne 0 ]; then
        echo "== $dir: $failed of $members generated crates do not compile (exit $status)"
        grep -E '^(error|.*: error)' "$work/check" | grep -v '^error: could not compile' | head -8
    fi
done
echo "$n workspaces, $with_suggestions with suggestions: $crates_ok of $crates_all generated crates compile"
[ "$crates_ok" -eq "$crates_all" ]
