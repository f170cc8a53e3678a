"""Benchmarks: trainable parameters, training step time, peak memory, inference latency (merged too) of every
PEFT method on point_mae, and the grouping ops per backend. Prints markdown, writes JSON.

    python tools/bench.py                              # CPU, ScanObjectNN shapes, batch 32
    python tools/bench.py --shape modelnet40 --batch 16 --methods full ssf adapter_x
    python tools/bench.py --device cuda --out bench_gpu.json
    python tools/bench.py --side_by_side --batch 8     # pcpeft vs the restated reference forward (CPU)
"""
from __future__ import annotations

import argparse
import json

from pcpeft.cli import add_debug_flag, run_tool
from pcpeft.benchmark import (DEFAULT_METHODS, INFER_REPEAT_FACTOR, SHAPES, bench_grouping, bench_methods,
                              bench_side_by_side, grouping_markdown, machine_description, methods_markdown,
                              side_by_side_markdown, target_checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shape", default="scanobjectnn", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=list(DEFAULT_METHODS))
    parser.add_argument("--skip_grouping", action="store_true")
    parser.add_argument("--out", default="bench.json")
    parser.add_argument("--side_by_side", action="store_true",
                        help="time pcpeft against the restated reference forward (each case in a fresh process)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of --side_by_side")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast on CPU (fp16 on CUDA) for the method rows")
    add_debug_flag(parser)
    args = parser.parse_args()
    machine = machine_description(args.device)
    if args.side_by_side:
        rows = bench_side_by_side(args.shape, args.batch, args.repeats, args.warmup, args.rounds)
        print(f"machine: {machine}\nshape: {args.shape} {SHAPES[args.shape]}, batch {args.batch}, "
              f"{args.repeats} repeats ({args.repeats * INFER_REPEAT_FACTOR} for inference cases) x {args.rounds} "
              "rounds\n")
        print(side_by_side_markdown(rows))
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "shape": args.shape, "batch": args.batch, "side_by_side": rows}, f, indent=2)
        return
    rows = bench_methods(args.methods, args.shape, args.batch, args.device, args.repeats, args.warmup, amp=args.amp)
    grouping = [] if args.skip_grouping else bench_grouping(args.device, args.repeats)
    print(f"machine: {machine}\nshape: {args.shape} {SHAPES[args.shape]}, batch {args.batch}\n")
    print(methods_markdown(rows))
    if grouping:
        print()
        print(grouping_markdown(grouping))
    print()
    print("\n".join(target_checks(rows, grouping)))
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "shape": args.shape, "batch": args.batch, "methods": rows,
                   "grouping": grouping, "targets": target_checks(rows, grouping)}, f, indent=2)


if __name__ == "__main__":
    run_tool(main)
