"""``pcpeft list``: the registered models, the PEFT methods and presets, the shipped recipes."""
from __future__ import annotations

import argparse
from pathlib import Path

SUMMARY = "list the models, the PEFT methods and presets, the shipped recipes or the shipped sweeps"
EXAMPLES = """  pcpeft list models
  pcpeft list methods
  pcpeft list recipes
  pcpeft list sweeps"""

#: the recipe fragments that are merged into whole recipes (not run by themselves), and the sweeps
FRAGMENT_FOLDERS = ("datasets", "models", "schedules", "sweeps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["models", "methods", "recipes", "sweeps"], help="what to list")


def first_line(text: str | None) -> str:
    """The first line of a docstring (empty when there is none)."""
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def recipe_summary(path: Path) -> str:
    """The first comment line of a recipe file (its one-line description)."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def model_rows() -> list[tuple[str, str]]:
    from ..models.registry import _MODELS, list_models

    return [(name, first_line(_MODELS[name].__doc__)) for name in list_models()]


def method_rows() -> list[tuple[str, str]]:
    from ..peft import PRESETS, available_methods
    from ..peft.base import method_config_class

    rows = []
    for name in available_methods():
        if name in PRESETS:
            rows.append((name, "preset: " + first_line(PRESETS[name].__doc__)))
        else:
            rows.append((name, first_line(method_config_class(name).__doc__)))
    return rows


def recipe_rows() -> list[tuple[str, str]]:
    from ..engine.recipe.shipped import RECIPES_DIR, shipped_recipes

    return [(name, recipe_summary(RECIPES_DIR / f"{name}.yaml")) for name in shipped_recipes()
            if name.split("/")[0] not in FRAGMENT_FOLDERS]


def sweep_rows() -> list[tuple[str, str]]:
    from ..engine.recipe.shipped import RECIPES_DIR, shipped_recipes

    return [(name, recipe_summary(RECIPES_DIR / f"{name}.yaml")) for name in shipped_recipes()
            if name.startswith("sweeps/")]


def run(args: argparse.Namespace) -> int:
    rows = {"models": model_rows, "methods": method_rows, "recipes": recipe_rows, "sweeps": sweep_rows}[args.what]()
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}".rstrip())
    return 0
