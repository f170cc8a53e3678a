"""Where recipes are found: a path, or the name of a recipe shipped with the package.

The recipes under ``cfgs/`` ship inside the package as ``pcpeft/recipes/`` (in a checkout that folder is a link to
``cfgs/``), so ``--config pointgpt_l/finetune_scan_hardest`` works after a plain ``pip install`` from any folder.
A name is looked up as a file first, then as a shipped recipe (``.yaml`` optional, a leading ``cfgs/`` ignored).
A path in the official repositories' spelling (``cfgs/PointGPT-S/finetune_scan_hardest.yaml``) that is not a
file finds the shipped recipe of the same row when there is exactly one (``pointgpt_s/finetune_scan_hardest``).
"""
from __future__ import annotations

import difflib
import logging
from pathlib import Path

from .yaml_io import ConfigError

LOG = logging.getLogger("pcpeft")

#: the shipped recipes (``cfgs/`` of the checkout)
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


def shipped_recipes() -> list[str]:
    """Names of every shipped recipe (``finetune_synthetic``, ``pointgpt_l/finetune_scan_hardest``, ...), sorted;
    data-set, model and schedule fragments (``datasets/``, ``models/``, ``schedules/``) included."""
    root = RECIPES_DIR.resolve()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def shipped_root_of(path: str | Path) -> Path | None:
    """The shipped recipes' folder when ``path`` lies inside it, else None."""
    root = RECIPES_DIR.resolve()
    try:
        Path(path).resolve().relative_to(root)
    except ValueError:
        return None
    return root


def _official_spelling(name: str) -> str:
    """``cfgs/PointGPT-S/finetune_scan_hardest.yaml`` -> ``pointgpt_s/finetune_scan_hardest``."""
    text = name.replace("\\", "/")
    if text.startswith("./"):
        text = text[2:]
    if text.startswith("cfgs/"):
        text = text[len("cfgs/"):]
    if text.endswith(".yaml"):
        text = text[: -len(".yaml")]
    return text.lower().replace("-", "_")


def resolve_recipe(name: str | Path) -> Path:
    """The recipe file ``name`` means: an existing file, else a shipped recipe; raises :class:`ConfigError` naming
    ``name`` and the closest shipped recipes otherwise."""
    path = Path(name)
    if path.is_file():
        return path
    if path.exists():
        raise ConfigError(f"--config {name}: is a folder, not a recipe file")
    text = str(name).replace("\\", "/")
    stripped = text[len("cfgs/"):] if text.startswith("cfgs/") else text
    root = RECIPES_DIR.resolve()
    for candidate in (stripped, f"{stripped}.yaml"):
        found = root / candidate
        if found.is_file() and ".." not in Path(candidate).parts:
            return found
    names = shipped_recipes()
    official = _official_spelling(text)
    if official in names:
        LOG.info(f"--config {name}: no such file; using the shipped recipe {official} (the same row)")
        return root / f"{official}.yaml"
    close = difflib.get_close_matches(official, names, n=3, cutoff=0.5)
    hint = f"; closest shipped recipes: {', '.join(close)}" if close else ""
    raise ConfigError(f"--config {name}: no such file and no shipped recipe of that name{hint} "
                      f"(`pcpeft list recipes` lists them)")


__all__ = ["RECIPES_DIR", "resolve_recipe", "shipped_recipes", "shipped_root_of"]
