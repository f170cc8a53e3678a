"""``pcpeft bench``: trainable parameters, training step time, peak memory and inference latency of every PEFT
method, and the grouping ops per backend."""
from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from .vocabulary import add_amp, add_device, add_out, positive_int, resolve_device

OPTION_ALIASES = {"--batch": "--batch_size"}
SUMMARY = "time every PEFT method's training step and inference, its memory, and the FPS / kNN kernels"
EXAMPLES = """  pcpeft bench                              # ScanObjectNN shapes, batch 32
  pcpeft bench --shape modelnet40 --batch_size 16 --methods full ssf adapter_x
  pcpeft bench --device cuda --out bench_gpu.json
  pcpeft bench --side_by_side --batch_size 8   # pcpeft against the restated reference forward (CPU)

Prints markdown tables and writes them as JSON (--out)."""


def benchmark_module():
    """The checkout's ``benchmarks/benchmark.py`` (benchmarks are not part of the installed package)."""
    import importlib
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if (root / "benchmarks" / "benchmark.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("benchmarks.benchmark")
    except ModuleNotFoundError:
        raise UsageError("pcpeft bench runs from a checkout of the pcpeft repository (its benchmarks/ folder); "
                         "it is not part of the installed package") from None


#: the input shapes of benchmarks/benchmark.py (points, groups, classes of the data set)
SHAPES = ("modelnet40", "scanobjectnn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_device(parser)
    parser.add_argument("--shape", default="scanobjectnn", choices=SHAPES,
                        help="input shapes: points, groups, classes of the data set")
    parser.add_argument("--batch_size", type=positive_int, default=32, help="clouds per step")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed repeats (the median is reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed repeats first")
    parser.add_argument("--methods", nargs="*", default=None, metavar="METHOD",
                        help="methods to time (default: every method and preset of the benchmark)")
    parser.add_argument("--skip_grouping", action="store_true", help="do not time the FPS / kNN kernels")
    add_out(parser, "the JSON file to write", default="bench.json")
    parser.add_argument("--side_by_side", action="store_true",
                        help="time pcpeft against the restated reference forward (each case in a fresh process)")
    parser.add_argument("--rounds", type=positive_int, default=2, help="interleaved rounds of --side_by_side")
    add_amp(parser)


def run(args: argparse.Namespace) -> int:
    bench = benchmark_module()
    device = resolve_device(args.device)
    machine = bench.machine_description(device)
    batch, shape = args.batch_size, f"{args.shape} {bench.SHAPES[args.shape]}"
    if args.side_by_side:
        rows = bench.bench_side_by_side(args.shape, batch, args.repeats, args.warmup, args.rounds)
        print(f"machine: {machine}\nshape: {shape}, batch {batch}, {args.repeats} repeats "
              f"({args.repeats * bench.INFER_REPEAT_FACTOR} for inference cases) x {args.rounds} rounds\n")
        print(bench.side_by_side_markdown(rows))
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "shape": args.shape, "batch": batch, "side_by_side": rows}, f, indent=2)
        return 0
    methods = args.methods if args.methods is not None else list(bench.DEFAULT_METHODS)
    rows = bench.bench_methods(methods, args.shape, batch, device, args.repeats, args.warmup, amp=args.amp)
    grouping = [] if args.skip_grouping else bench.bench_grouping(device, args.repeats)
    print(f"machine: {machine}\nshape: {shape}, batch {batch}\n")
    print(bench.methods_markdown(rows))
    if grouping:
        print()
        print(bench.grouping_markdown(grouping))
    checks = bench.target_checks(rows, grouping)
    print()
    print("\n".join(checks))
    with open(args.out, "w") as f:
        json.dump({"machine": machine, "shape": args.shape, "batch": batch, "methods": rows, "grouping": grouping,
                   "targets": checks}, f, indent=2)
    return 0
