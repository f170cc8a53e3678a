"""``pcpeft table``: the paper table of a sweep or of any folder of run folders."""
from __future__ import annotations

import argparse

from ..errors import UsageError

SUMMARY = ("the table of a sweep (or of run folders): mean, std, n, 95% interval, min/max over seeds, paired tests "
           "against a baseline; Markdown, LaTeX, CSV, JSON and a PNG")
EXAMPLES = """  pcpeft table sweeps/demo
  pcpeft table sweeps/demo --baseline peft=full
  pcpeft table experiments/finetune_synthetic --epoch last   # plain run folders, grouped by recipe and method

Writes table.md, table.tex, table.csv, table.json and table.png into the folder (or --out_dir)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a sweep's --out_dir, or a folder holding run folders")
    parser.add_argument("--baseline", nargs="*", default=None, metavar="KEY=VALUE",
                        help="the baseline cell of the paired comparisons, e.g. peft=full")
    parser.add_argument("--epoch", default=None, choices=["val", "last", "test"],
                        help="whose test score: the epoch chosen on validation (default when every run has a "
                             "validation split), the last epoch (default otherwise), or the epoch chosen on the test "
                             "split (optimistic; labelled so)")
    parser.add_argument("--out_dir", default=None, metavar="DIR", help="where the table files go (default: DIR)")


def run(args: argparse.Namespace) -> int:
    from ..experiments.table import build_table, markdown, write_table

    baseline = None
    if args.baseline:
        baseline = {}
        for item in args.baseline:
            if "=" not in item:
                raise UsageError(f"--baseline {item!r}: write KEY=VALUE (e.g. peft=full)")
            key, value = item.split("=", 1)
            baseline[key] = value
    table = build_table(args.folder, args.epoch, baseline)
    files = write_table(table, args.out_dir or args.folder)
    print(markdown(table))
    print(f"\nwritten: {', '.join(str(p) for p in files.values())}")
    return 0
