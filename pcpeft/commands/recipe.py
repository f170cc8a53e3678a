"""``pcpeft recipe``: the pcpeft recipe an official repository's recipe file means."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .vocabulary import add_out

SUMMARY = ("print the pcpeft recipe an official recipe (Point-MAE / PointGPT / DAPT / ... dialect) means, with "
           "what was decided and any key that cannot be mapped")
EXAMPLES = """  pcpeft recipe Point-MAE/cfgs/finetune_scan_hardest.yaml
  pcpeft recipe PointGPT/cfgs/PointGPT-S/finetune_scan_objbg.yaml --out pointgpt_s_objbg.yaml
  pcpeft train --config PointGPT/cfgs/PointGPT-S/finetune_scan_objbg.yaml --ckpts pretrained.pth   # directly"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("official", metavar="OFFICIAL", help="an official repository's recipe YAML file")
    add_out(parser, "also write the translated recipe to this YAML file")


def run(args: argparse.Namespace) -> int:
    from ..engine.recipe.official import is_official_recipe, translate_official_recipe
    from ..engine.recipe.schema import validate_recipe
    from .recipe_input import read_yaml_mapping

    path = Path(args.official)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    raw = read_yaml_mapping(path)
    if not isinstance(raw, dict) or not is_official_recipe(raw):
        raise UsageError(f"{path}: not an official repository's recipe (no model.NAME, no dataset train/val/test "
                         f"sections): it is read as a pcpeft recipe as it is")
    translation = translate_official_recipe(path, raw)
    validate_recipe(translation.recipe, f"{path} (translated)")
    text = translation.to_yaml()
    print(text, end="" if text.endswith("\n") else "\n")
    if translation.matches:
        print(f"# the same settings as the shipped recipe {translation.matches}")
    if args.out:
        Path(args.out).write_text(text)
    return 0
