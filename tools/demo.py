"""The embedded demo: fine-tune the shipped pre-trained demo backbone (sha256-checked) on the SYNTHETIC demo set
with full / linear / ssf / adapter_x, plus full fine-tuning from a random initialisation with the same budget;
epochs are chosen on a validation split carved from the training data; one table, results.json and a routing
picture under demo_output/. About 3.5 minutes on 2 CPU cores.

Examples:
    python tools/demo.py                    # writes everything under demo_output/
    python tools/demo.py --pretrain         # first redo the backbone's pre-training (cfgs/pretrain_synthetic.yaml)
    python tools/demo.py --out /tmp/demo --size tiny
    python tools/demo.py --amp --out demo_output_bf16   # every run under CPU bf16 autocast (where native)
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
    parser.add_argument("--pretrain", action="store_true",
                        help="redo the pre-training of the demo backbone instead of using the shipped file")
    parser.add_argument("--amp", action="store_true", help="train and evaluate under bf16 autocast on a CPU with "
                        "native bf16 (train.amp_cpu; fp32 with a logged reason elsewhere)")
    parser.add_argument("--no_progress", action="store_true")
    add_debug_flag(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    summary = run_demo(args.out, args.size, args.seed, progress=not args.no_progress, redo_pretraining=args.pretrain,
                       amp=args.amp)
    print()
    print(summary["table"])
    print(f"\nfinished in {summary['seconds']:.0f} s; everything is under {args.out}/ (results.json, routing.png)")


if __name__ == "__main__":
    run_tool(main)
