"""``pcpeft convert``: between the official DAPT / IDPT / PPT / PointGST / MoST / GAPrompt / PointLoRA fine-tuned
files and pcpeft adapter folders. Round trips are lossless: official -> pcpeft -> official gives the same tensors
under the same keys, in the same order, with the same ``module.`` prefix, epoch and metrics (the optimiser state is
not carried)."""
from __future__ import annotations

import argparse
import json

from .vocabulary import Parser, add_ckpts, add_debug, add_out, add_out_dir

SUMMARY = ("convert official DAPT / IDPT / PPT / PointGST / MoST / GAPrompt / PointLoRA fine-tuned files to pcpeft "
           "adapter folders and back")
EXAMPLES = """  pcpeft convert to-pcpeft dapt_scan_hardest.pth --out_dir out/dapt-adapter --peft dapt \\
      --model_options '{"num_group": 128}'
  pcpeft convert to-official experiments/finetune_scan_hardest/dapt --out out/dapt_official.pth \\
      --ckpts pretrain.pth"""


def json_value(text: str):
    """A JSON value, or the text itself (a bare method or preset name)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def json_object(text: str) -> dict:
    """argparse type: a JSON object."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    directions = parser.add_subparsers(dest="direction", required=True, metavar="DIRECTION", parser_class=Parser)
    to_pcpeft = directions.add_parser("to-pcpeft", help="official fine-tuned file -> adapter folder",
                                      description="official fine-tuned file -> pcpeft adapter folder")
    to_pcpeft.add_argument("official", metavar="OFFICIAL", help="the official fine-tuned .pth file")
    add_out_dir(to_pcpeft, "the adapter folder to write (save_pretrained layout)", required=True)
    to_pcpeft.add_argument("--peft", type=json_value, required=True, metavar="METHOD",
                           help='dapt, idpt, ppt, pointgst, most, gaprompt, pointlora, or a JSON config such '
                                'as {"method": "idpt", "prompt_layer": 6}')
    to_pcpeft.add_argument("--model", default="point_mae", help="the backbone the file was fine-tuned from")
    to_official = directions.add_parser("to-official", help="adapter or run folder -> official fine-tuned file",
                                        description="pcpeft adapter or run folder -> official fine-tuned file",
                                        option_aliases={"--backbone": "--ckpts"})
    to_official.add_argument("adapter", metavar="RUN_OR_ADAPTER", help="a run folder or an adapter folder")
    add_out(to_official, "the official .pth file to write", required=True)
    add_ckpts(to_official, "the pre-training file the method started from", required=True)
    to_official.add_argument("--model", default=None, help="default: the one recorded in the adapter folder")
    to_official.add_argument("--module_prefix", action="store_true", default=None,
                             help="prefix keys with 'module.' (default: as the converted official file had)")
    for command in (to_pcpeft, to_official):
        command.add_argument("--model_options", type=json_object, default=None,
                             help='create_model options as JSON, e.g. {"num_group": 128}')
        add_debug(command)


def run(args: argparse.Namespace) -> int:
    from ..peft.convert import adapter_to_official, official_to_adapter

    if args.direction == "to-pcpeft":
        out = official_to_adapter(args.official, args.out_dir, args.peft, args.model, args.model_options)
    else:
        out = adapter_to_official(args.adapter, args.out, args.ckpts, args.model, args.model_options,
                                  args.module_prefix)
    print(f"wrote {out}")
    return 0
