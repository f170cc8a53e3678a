"""Print the trainable parameters of every PEFT method and preset on a backbone (markdown or JSON).

    python tools/peft_table.py                                   # point_mae, 15 classes, 128 groups (ScanObjectNN)
    python tools/peft_table.py --backbone point_bert --num-classes 40 --num-group 64 --json
    python tools/peft_table.py --model pointgpt_l           # any registered backbone (--model = --backbone)
    python tools/peft_table.py --model vit_base_patch16_224 --num-classes 100   # 2D: no --num-group

"official trainable" is what the official code of DAPT / IDPT / PPT / PointGST trains (Point-MAE, 15 classes).
"—" marks a method that refuses the backbone (the JSON gives its reason). Models are built on the meta device
(shapes only), so even PointGPT-L takes seconds.
"""
from __future__ import annotations

import argparse
import json

import pcpeft
from pcpeft.cli import add_debug_flag, positive_int, run_tool
from pcpeft.errors import UsageError
from pcpeft.models.registry import model_options
from pcpeft.peft.table import format_markdown, trainable_table

#: the point backbones' group count when --num-group is not given (ScanObjectNN's 2048 points)
DEFAULT_NUM_GROUP = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "--backbone", dest="backbone", default="point_mae", choices=pcpeft.list_models())
    parser.add_argument("--num-classes", type=positive_int, default=15)
    parser.add_argument("--num-group", type=positive_int, default=None,
                        help=f"point backbones only (default {DEFAULT_NUM_GROUP})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    add_debug_flag(parser)
    args = parser.parse_args()
    options = {"num_classes": args.num_classes}
    if "num_group" in model_options(args.backbone):
        options["num_group"] = DEFAULT_NUM_GROUP if args.num_group is None else args.num_group
    elif args.num_group is not None:
        raise UsageError(f"--num-group: {args.backbone} has no point groups (it is not a point backbone)")
    rows = trainable_table(args.backbone, device="meta", **options)
    print(json.dumps(rows, indent=2) if args.json else format_markdown(rows))


if __name__ == "__main__":
    run_tool(main)
