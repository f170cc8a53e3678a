"""``pcpeft params``: the trainable parameters of every PEFT method and preset on a backbone."""
from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from .vocabulary import positive_int

OPTION_ALIASES = {"--backbone": "--model"}
SUMMARY = "trainable parameters of every PEFT method and preset on a backbone (markdown or JSON)"
EXAMPLES = """  pcpeft params                                  # point_mae, 15 classes, 128 groups (ScanObjectNN)
  pcpeft params --model point_bert --num_classes 40 --num_group 64 --json
  pcpeft params --model pointgpt_l
  pcpeft params --model vit_base_patch16_224 --num_classes 100   # 2D: no --num_group

"official trainable" is what the official code of DAPT / IDPT / PPT / PointGST trains (Point-MAE, 15 classes).
"-" marks a method that refuses the backbone (the JSON gives its reason). Models are built on the meta device
(shapes only), so even PointGPT-L takes seconds."""

#: the point backbones' group count when --num_group is not given (ScanObjectNN's 2048 points)
DEFAULT_NUM_GROUP = 128


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import pcpeft

    parser.add_argument("--model", default="point_mae", choices=pcpeft.list_models(), help="registered model name")
    parser.add_argument("--num_classes", type=positive_int, default=15, help="classes of the head")
    parser.add_argument("--num_group", type=positive_int, default=None,
                        help=f"FPS groups; point backbones only (default {DEFAULT_NUM_GROUP})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")


def run(args: argparse.Namespace) -> int:
    from ..models.registry import model_options
    from ..peft.table import format_markdown, trainable_table

    options = {"num_classes": args.num_classes}
    if "num_group" in model_options(args.model):
        options["num_group"] = DEFAULT_NUM_GROUP if args.num_group is None else args.num_group
    elif args.num_group is not None:
        raise UsageError(f"--num_group: {args.model} has no point groups (it is not a point backbone)")
    rows = trainable_table(args.model, device="meta", **options)
    print(json.dumps(rows, indent=2) if args.json else format_markdown(rows))
    return 0
