#!/usr/bin/env python3
"""Lists the source files of a workspace that no analysed module names (issue 18, module recall).

Usage: module-recall.py WORKSPACE EDGES_TSV [--list]

WORKSPACE is the workspace root; EDGES_TSV the output of `analyze_dir WORKSPACE --edges`, whose
`module` lines give every module's file. Walks `src/` of every member package (from `cargo
metadata --no-deps --offline`, nested packages excluded) and prints how many `.rs` files it holds
and how many are the file of no module. Each of those is then checked by hand: a dead file (no
`mod` names it), a data file (`include_str!`), or a `#[cfg]` alternative of a module declared
twice (`#[cfg(unix)] #[path = "a.rs"] mod imp;` and `#[cfg(windows)] #[path = "b.rs"] mod imp;`:
one module, whose facts come from both files, named after the first) is no missed module.
"""

import json
import os
import subprocess
import sys


def main():
    root = os.path.realpath(sys.argv[1])
    edges = sys.argv[2]
    listing = "--list" in sys.argv[3:]
    metadata = json.loads(
        subprocess.run(
            [
                "cargo",
                "metadata",
                "--no-deps",
                "--offline",
                "--format-version",
                "1",
                "--manifest-path",
                os.path.join(root, "Cargo.toml"),
            ],
            check=True,
            capture_output=True,
            cwd="/",
        ).stdout
    )
    reached = set()
    with open(edges, encoding="utf-8") as lines:
        for line in lines:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "module" and len(parts) == 3:
                reached.add(os.path.realpath(parts[2]))
    members = set(metadata["workspace_members"])
    total = 0
    missing = []
    for package in metadata["packages"]:
        if package["id"] not in members:
            continue
        src = os.path.join(os.path.dirname(package["manifest_path"]), "src")
        for directory, subdirectories, files in os.walk(src):
            if directory != src and os.path.exists(os.path.join(directory, "Cargo.toml")):
                subdirectories[:] = []
                continue
            for name in files:
                if name.endswith(".rs"):
                    total += 1
                    path = os.path.realpath(os.path.join(directory, name))
                    if path not in reached:
                        missing.append(os.path.relpath(path, root))
    print(f"{os.path.basename(root)}: {total} files under src/, {len(missing)} the file of no module")
    if listing:
        for path in sorted(missing):
            print(f"  {path}")


if __name__ == "__main__":
    main()
