"""The embedded demo: generate the SYNTHETIC demo set, pre-train a small Point-MAE on it, fine-tune it with
linear / full / ssf / adapter_x (and full + linear from a random initialisation), print one table. ~8 min on 2 cores.

    python tools/demo.py                    # writes everything under demo_output/
    python tools/demo.py --out /tmp/demo --size tiny
"""
from __future__ import annotations

import argparse
import logging

from pcpeft.cli import add_debug_flag, run_tool
from pcpeft.engine.demo import SIZES, run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output")
    parser.add_argument("--size", default="default", choices=sorted(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_progress", action="store_true")
    add_debug_flag(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    summary = run_demo(args.out, args.size, args.seed, progress=not args.no_progress)
    print()
    print(summary["table"])
    print(f"\nfinished in {summary['seconds']:.0f} s; everything is under {args.out}/")


if __name__ == "__main__":
    run_tool(main)
