"""``pcpeft report``: one self-contained HTML page of a run (card, training curves, confusion matrix, 3-D gallery of
test clouds) or of a sweep (its table and paired comparisons as interactive charts, linked to each run's page)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .vocabulary import add_checkpoint_choice, add_ckpts, add_device, add_out, non_negative_int, resolve_device

SUMMARY = ("one self-contained HTML page of a run (card, curves, confusion matrix, interactive 3-D clouds) or of a "
           "sweep (table, intervals, paired comparisons, linked run pages)")
EXAMPLES = """  pcpeft report experiments/finetune_synthetic/ax                      # writes RUN/report.html
  pcpeft report experiments/finetune_synthetic/ax --color experts --block 2 --out ax.html
  pcpeft report experiments/partseg/synthetic/ax --clouds 12
  pcpeft report sweeps/demo --baseline peft=full                        # the sweep page and each run's page

The page needs no network: plotly.js and every figure are inside the file (about 5 MB plus the clouds)."""

COLORS = ("height", "groups", "experts")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN",
                        help="a run folder written by `pcpeft train` (experiments/<recipe>/<exp_name>), or a sweep's "
                             "folder (sweep.yaml) or any folder of run folders for the sweep page")
    gallery = parser.add_argument_group("a run's page")
    gallery.add_argument("--clouds", type=non_negative_int, default=48, metavar="N",
                         help="test clouds (part shapes) in the 3-D gallery, misclassified (worst segmented) first; "
                              "0: none")
    gallery.add_argument("--color", default="height", choices=COLORS,
                         help="gallery colouring: height, the model's FPS groups, or the SMoA expert of each group "
                              "in --block (adapter_x runs)")
    gallery.add_argument("--block", type=non_negative_int, default=0, metavar="K",
                         help="with --color experts: which SMoA block's routing (0: the first)")
    add_checkpoint_choice(gallery)
    add_ckpts(gallery, "the backbone file of a PEFT run when it is no longer where the run recorded it (sha256 "
                       "checked)")
    add_device(gallery)
    sweep = parser.add_argument_group("a sweep's page")
    sweep.add_argument("--baseline", nargs="*", default=None, metavar="KEY=VALUE",
                       help="the baseline cell of the paired comparisons, e.g. peft=full")
    sweep.add_argument("--epoch", default=None, choices=["val", "last", "test"],
                       help="whose test score, as `pcpeft table --epoch` (default: val when every run has a "
                            "validation split, else last)")
    sweep.add_argument("--no_run_reports", action="store_true",
                       help="link each run's report.html without building it (`pcpeft report RUN` writes it "
                            "later); the page marks the missing ones")
    add_out(parser, "the HTML file to write (default: RUN/report.html, or the sweep folder's report.html)")


def parse_baseline(items: list[str] | None) -> dict[str, str] | None:
    """``["peft=full"]`` -> ``{"peft": "full"}``."""
    if not items:
        return None
    baseline = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--baseline {item!r}: write KEY=VALUE (e.g. peft=full)")
        key, value = item.split("=", 1)
        baseline[key] = value
    return baseline


def run(args: argparse.Namespace) -> int:
    from ..report import ReportOptions, build_run_report, build_sweep_report, is_table_folder

    folder = Path(args.run)
    if not folder.is_dir():
        raise UsageError(f"{args.run}: no such folder; give a run folder (experiments/<recipe>/<exp_name>) or a "
                         f"sweep's folder")
    if args.out and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: a folder; --out is the HTML file to write (e.g. "
                         f"{Path(args.out) / 'report.html'})")
    sweep = is_table_folder(folder)
    if not sweep and (args.baseline or args.epoch or args.no_run_reports):
        raise UsageError(f"{args.run}: a run folder; --baseline, --epoch and --no_run_reports go with a sweep's "
                         f"folder")
    options = ReportOptions(clouds=args.clouds, color=args.color, block=args.block,
                            device=resolve_device(args.device), ckpts=args.ckpts, checkpoint=args.checkpoint)
    if sweep:
        path = build_sweep_report(folder, args.out, args.epoch, parse_baseline(args.baseline),
                                  not args.no_run_reports, options)
    else:
        path = build_run_report(folder, args.out, options)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
