#!/usr/bin/env python3
"""Per-round ratios of one target to its peers, from the shared proxy bench's raw results.

The bench (../shared/bench/proxy/run.sh) runs every target once per round, in an order that
rotates, so each round is a paired comparison on the machine as it was then. This script divides
the target's figure by each peer's figure round by round, then gives the median of those ratios,
their range, in how many rounds the target did better, and a 95% bootstrap interval of the
median. Several result directories can be pooled: pass them all.

Usage:
    scripts/bench-ratios.py results/proxy-A [results/proxy-B ...] [--target fig] [--out FILE]

It writes a Markdown table to stdout (and to --out when given). Only the standard library.
"""

import argparse
import csv
import random
import statistics
import sys
from pathlib import Path

# (column in raw.csv, label, True when higher is better)
METRICS = [
    ("rps", "req/s", True),
    ("p50_us", "p50", False),
    ("p90_us", "p90", False),
    ("p99_us", "p99", False),
    ("proxy_cpu_us_per_req", "proxy CPU/req", False),
]
BOOTSTRAP_SAMPLES = 4000


def load(dirs):
    rows = []
    for run, directory in enumerate(dirs):
        path = Path(directory) / "raw.csv"
        try:
            with path.open(newline="") as f:
                for row in csv.DictReader(f):
                    row["run"] = run
                    rows.append(row)
        except OSError as err:
            sys.exit(f"bench-ratios: cannot read {path}: {err.strerror}")
    return rows


def value(row, column):
    text = (row or {}).get(column) or ""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number > 0 else None


def median_interval(ratios):
    # Seeded: the same results give the same table.
    rng = random.Random(1)
    medians = sorted(
        statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(BOOTSTRAP_SAMPLES)
    )
    return medians[int(0.025 * BOOTSTRAP_SAMPLES)], medians[int(0.975 * BOOTSTRAP_SAMPLES) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="results/proxy-<time> directories")
    parser.add_argument("--target", default="fig", help="the target to compare (default: fig)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()

    rows = load(args.dirs)
    cells = {(r["run"], r["round"], r["conns"], r["target"]): r for r in rows}
    targets = list(dict.fromkeys(r["target"] for r in rows))
    if args.target not in targets:
        sys.exit(f"bench-ratios: no target `{args.target}` in the results (have: {', '.join(targets)})")
    peers = [t for t in targets if t != args.target]
    rounds = sorted({(r["run"], r["round"]) for r in rows})
    conns = sorted({r["conns"] for r in rows}, key=int, reverse=True)

    lines = [
        f"# Per-round ratios, {args.target} / peer ({len(args.dirs)} run(s), {len(rounds)} rounds)",
        "",
        "Each round is a paired comparison; the median is over rounds, the interval a 95% bootstrap",
        "interval of that median. \"Better\" counts rounds where the ratio is above 1 for req/s and",
        "below 1 for latency and CPU.",
    ]
    for conn in conns:
        lines += [
            "",
            f"## {conn} connection(s)",
            "",
            "| peer | metric | median ratio | 95% interval | min-max | better in |",
            "|---|---|---|---|---|---|",
        ]
        for peer in peers:
            for column, label, higher_better in METRICS:
                ratios = []
                for run, rnd in rounds:
                    ours = value(cells.get((run, rnd, conn, args.target)), column)
                    theirs = value(cells.get((run, rnd, conn, peer)), column)
                    if ours is not None and theirs is not None:
                        ratios.append(ours / theirs)
                if not ratios:
                    continue
                low, high = median_interval(ratios)
                better = sum(1 for r in ratios if (r > 1 if higher_better else r < 1))
                lines.append(
                    f"| {peer} | {label} | {statistics.median(ratios):.3f} | "
                    f"{low:.3f}-{high:.3f} | {min(ratios):.2f}-{max(ratios):.2f} | "
                    f"{better} of {len(ratios)} |"
                )
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
