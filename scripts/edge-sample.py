#!/usr/bin/env python3
"""Samples module edges of a workspace for checking by hand (issue 18).

Usage: edge-sample.py EDGES_TSV [N] [SEED]

EDGES_TSV is the output of `analyze_dir PATH --edges` (one line per edge and location). Picks N
(default 30) distinct edges at random with SEED (default 18), one random location of each, and
prints a tab-separated line per edge: from, to, file:line, the items with how they were
resolved, and the source line at that location, so a reviewer can judge whether `from` really
uses `to` there. Paths are printed relative to the common prefix of the files.
"""

import os
import random
import sys


def main():
    path = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 18
    edges = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5 or parts[0] != "edge":
                continue
            _, source, target, location, items = parts[:5]
            edges.setdefault((source, target), []).append((location, items))
    rng = random.Random(seed)
    keys = sorted(edges)
    sample = rng.sample(keys, min(count, len(keys)))
    files = [edges[key][0][0].rsplit(":", 2)[0] for key in sample]
    prefix = os.path.commonpath(files) if files else ""
    for key in sorted(sample):
        location, items = rng.choice(edges[key])
        file, line, _column = location.rsplit(":", 2)
        try:
            with open(file, encoding="utf-8", errors="replace") as source:
                text = source.read().splitlines()[int(line) - 1].strip()
        except (OSError, IndexError):
            text = "<unreadable>"
        shown = os.path.relpath(file, prefix) if prefix else file
        print(f"{key[0]}\t{key[1]}\t{shown}:{line}\t{items}\t{text}")
    print(f"# {len(keys)} edges, {len(sample)} sampled, seed {seed}", file=sys.stderr)


if __name__ == "__main__":
    main()
