"""The demo's accuracy targets, checked on a finished demo run (its ``results.json``): each printed as met or
missed, with the numbers. The targets are the project's own, so they live here and not in the package.

    python benchmarks/demo_targets.py demo_output/results.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def check_targets(rows: list[dict], merged: float) -> list[dict]:
    """Each target met or missed, with the numbers (test accuracy of the validation-chosen epoch)."""
    acc = {(r["method"].split(" ")[0], r["init"]): r["test_acc"] for r in rows}
    full, scratch = acc[("full", "pretrained")], acc[("full", "scratch")]
    targets = []
    for method in ("adapter_x", "ssf"):
        mine = acc[(method, "pretrained")]
        targets.append({"target": f"{method} within 2 points of full fine-tuning from the same backbone",
                        "met": mine >= full - 2.0, "numbers": f"{mine:.1f} vs {full:.1f}"})
        targets.append({"target": f"{method} above full fine-tuning from a random initialisation",
                        "met": mine > scratch, "numbers": f"{mine:.1f} vs {scratch:.1f}"})
    ssf = acc[("ssf", "pretrained")]
    targets.append({"target": "merged SSF gives the unmerged accuracy", "met": abs(merged - ssf) < 1e-9,
                    "numbers": f"{merged:.1f} vs {ssf:.1f}"})
    return targets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json of a `pcpeft demo` run")
    args = parser.parse_args()
    summary = json.loads(args.results.read_text())
    targets = check_targets(summary["rows"], summary["merged_ssf_test_acc"])
    for t in targets:
        print(f"- {'MET' if t['met'] else 'MISSED'}: {t['target']} ({t['numbers']})")
    return 0 if all(t["met"] for t in targets) else 1


if __name__ == "__main__":
    raise SystemExit(main())
