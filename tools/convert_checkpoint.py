"""Convert between the official DAPT / IDPT / PPT / PointGST fine-tuned files and pcpeft adapter folders.

Examples:
    # official fine-tuned file -> pcpeft adapter folder (save_pretrained layout, ~1-7 MB)
    python tools/convert_checkpoint.py to-pcpeft dapt_scan_hardest.pth out/dapt-adapter --peft dapt \\
        --model-options '{"num_group": 128}'
    # pcpeft adapter folder or run folder (adapter-best/) -> official layout, on the pre-training file it started from
    python tools/convert_checkpoint.py to-official experiments/.../run out/dapt_official.pth --backbone pretrain.pth

Round trips are lossless: official -> pcpeft -> official gives the same tensors under the same keys, in the same
order, with the same ``module.`` prefix, epoch and metrics (the optimiser state is not carried).
"""
from __future__ import annotations

import argparse
import json

from pcpeft.cli import add_debug_flag, run_tool


def json_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare method or preset name


def json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def main() -> None:
    from pcpeft.peft.convert import adapter_to_official, official_to_adapter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="direction", required=True)
    to_pcpeft = sub.add_parser("to-pcpeft", help="official fine-tuned file -> adapter folder")
    to_pcpeft.add_argument("official")
    to_pcpeft.add_argument("out_dir")
    to_pcpeft.add_argument("--peft", type=json_value, required=True,
                           help='method name (dapt, idpt, ppt, pointgst) or a JSON config such as {"method": "idpt", '
                                '"prompt_layer": 6}')
    to_pcpeft.add_argument("--model", default="point_mae")
    to_official = sub.add_parser("to-official", help="adapter or run folder -> official fine-tuned file")
    to_official.add_argument("adapter")
    to_official.add_argument("out_file")
    to_official.add_argument("--backbone", required=True, help="the pre-training file the method started from")
    to_official.add_argument("--model", default=None, help="default: the one recorded in the adapter folder")
    to_official.add_argument("--module-prefix", action="store_true", default=None,
                             help="prefix keys with 'module.' (default: as the converted official file had)")
    to_official.add_argument("--peft", type=json_value, default=None, help="ignored: the adapter folder says it")
    for command in (to_pcpeft, to_official):
        command.add_argument("--model-options", type=json_object, default=None,
                             help='create_model options as JSON, e.g. {"num_group": 128}')
        add_debug_flag(command)
    args = parser.parse_args()
    if args.direction == "to-pcpeft":
        out = official_to_adapter(args.official, args.out_dir, args.peft, args.model, args.model_options)
    else:
        out = adapter_to_official(args.adapter, args.out_file, args.backbone, args.model, args.model_options,
                                  args.module_prefix)
    print(f"wrote {out}")


if __name__ == "__main__":
    run_tool(main)
