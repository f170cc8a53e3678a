"""``pcpeft demo``: the embedded demo, from the shipped pre-trained backbone to one honest table."""
from __future__ import annotations

import argparse

from ..errors import UsageError
from .vocabulary import OUT_IS_A_FILE, add_out_dir, add_progress, add_seed, positive_int

OPTION_ALIASES = {"--out": OUT_IS_A_FILE}
SUMMARY = ("fine-tune the shipped pre-trained demo backbone on the synthetic demo set with full / linear / ssf / "
           "adapter_x (plus full from scratch); one table")
EXAMPLES = """  pcpeft demo                          # writes everything under demo_output/
  pcpeft demo --pretrain               # first redo the backbone's pre-training (the pretrain_synthetic recipe)
  pcpeft demo --out_dir /tmp/demo --size tiny
  pcpeft demo --amp --out_dir demo_output_bf16   # under CPU bf16 autocast (where native)
  pcpeft demo --seeds 5                # every row over 5 seeds: means, intervals, paired verdicts

Epochs are chosen on a validation split carved from the training data; the test split chooses nothing.
About 3-6 minutes on 2 CPU cores. The data are SYNTHETIC: the numbers say nothing about ScanObjectNN."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..experiments.demo import SIZES

    add_out_dir(parser, "where the runs, results.json, results.md and routing.png go", default="demo_output")
    parser.add_argument("--size", default="default", choices=sorted(SIZES), help="default: the table; tiny: seconds")
    add_seed(parser)
    parser.add_argument("--pretrain", action="store_true",
                        help="redo the pre-training of the demo backbone instead of using the shipped file")
    parser.add_argument("--amp", action="store_true", help="train and evaluate under bf16 autocast on a CPU with "
                        "native bf16 (fp32 with a logged reason elsewhere)")
    parser.add_argument("--seeds", type=positive_int, default=1,
                        help="run every row over this many seeds (each its own data, split and training draws) "
                             "through pcpeft sweep and pcpeft table; the verdicts come from paired differences")
    parser.add_argument("--resume", action="store_true", help="with --seeds: continue an interrupted run")
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    from ..experiments.demo import run_demo

    if args.seeds > 1:
        from ..experiments.demo_sweep import run_demo_seeds

        if args.pretrain:
            raise UsageError("--seeds runs on the shipped backbone: drop --pretrain")
        summary = run_demo_seeds(args.out_dir, args.size, args.seeds, args.resume, args.amp)
        print(summary["table"])
        print(f"\nfinished in {summary['seconds']:.0f} s; everything is under {args.out_dir}/ (results_seeds.md, "
              f"sweep/)")
        return 2 if summary["failed"] else 0

    summary = run_demo(args.out_dir, args.size, args.seed, progress=True, redo_pretraining=args.pretrain,
                       amp=args.amp)
    print()
    print(summary["table"])
    print(f"\nfinished in {summary['seconds']:.0f} s; everything is under {args.out_dir}/ (results.json, routing.png)")
    return 0
