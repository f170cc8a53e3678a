"""``pcpeft recipe``: a recipe as pcpeft reads it: a shipped or own recipe resolved (``_base_`` merged, ``--opts``
applied, every default filled in), or the pcpeft recipe an official repository's recipe file means."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from .vocabulary import add_opts, add_out

SUMMARY = ("print a recipe resolved (bases merged, every default filled in), or the pcpeft recipe an official recipe "
           "(Point-MAE / PointGPT / DAPT / ... dialect) means, with what was decided and any key that cannot be mapped")
EXAMPLES = """  pcpeft recipe methods/ppt_scan_hardest                 # a shipped recipe, every default filled in
  pcpeft recipe my_recipe.yaml --opts train.batch_size=16
  pcpeft recipe Point-MAE/cfgs/finetune_scan_hardest.yaml
  pcpeft recipe PointGPT/cfgs/PointGPT-S/finetune_scan_objbg.yaml --out pointgpt_s_objbg.yaml
  pcpeft train --config PointGPT/cfgs/PointGPT-S/finetune_scan_objbg.yaml --ckpts pretrained.pth   # directly"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("official", metavar="RECIPE",
                        help="a shipped recipe name, a recipe file, or an official repository's recipe YAML file")
    add_opts(parser)
    add_out(parser, "also write the resolved (or translated) recipe to this YAML file")


def resolved_recipe(name: str, overrides: list[str]) -> str:
    """A pcpeft recipe as the trainer reads it, as YAML: bases merged, overrides applied, every section's defaults
    filled in (the dataset section's from its registered data set)."""
    import yaml

    from ..engine.recipe.schema import validate_recipe
    from .recipe_input import load_recipe

    loaded = load_recipe(name, overrides)
    settings = validate_recipe(loaded.config, str(loaded.path))
    resolved = settings.recipe.model_dump(exclude_none=True)
    resolved.update(model=settings.model, dataset=settings.dataset.model_dump())
    return f"# {loaded.path}, resolved\n" + yaml.safe_dump(resolved, sort_keys=False, width=120)


def run(args: argparse.Namespace) -> int:
    from ..engine.recipe.official import is_official_recipe, translate_official_recipe
    from ..engine.recipe.schema import validate_recipe
    from ..engine.recipe.shipped import resolve_recipe
    from .recipe_input import read_yaml_mapping

    path = resolve_recipe(args.official)
    raw = read_yaml_mapping(path)
    if not isinstance(raw, dict) or not is_official_recipe(raw):
        text = resolved_recipe(args.official, args.opts or [])
        print(text, end="")
        if args.out:
            Path(args.out).write_text(text)
        return 0
    if args.opts:
        raise UsageError("--opts applies to pcpeft recipes; translate the official recipe first (--out), then "
                         "train it with --opts")
    translation = translate_official_recipe(path, raw)
    validate_recipe(translation.recipe, f"{path} (translated)")
    text = translation.to_yaml()
    print(text, end="" if text.endswith("\n") else "\n")
    if translation.matches:
        print(f"# the same settings as the shipped recipe {translation.matches}")
    if args.out:
        Path(args.out).write_text(text)
    return 0
