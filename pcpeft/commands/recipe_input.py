"""A ``--config`` value as a recipe dict: a path or a shipped recipe name, in pcpeft's dialect or translated from
an official repository's (``model: {NAME: ...}``, ``dataset: {train: {_base_: ...}}``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..engine.config import apply_overrides, load_config, read_yaml
from ..engine.recipe_files import resolve_recipe

LOG = logging.getLogger("pcpeft")


@dataclass
class LoadedRecipe:
    """The merged recipe (``config``, overrides applied), the file it came from, and for an official recipe the
    translation (``official``: its decisions and unmapped keys) and the original text."""

    config: dict
    path: Path
    official: Any = None
    official_text: str | None = None


def read_yaml_mapping(path: Path) -> Any:
    """The YAML content of ``path``; a :class:`ConfigError` naming the file when it is not YAML."""
    return read_yaml(path)


def load_recipe(name: str | Path, overrides: Sequence[str] = ()) -> LoadedRecipe:
    """Resolve ``name`` (:func:`resolve_recipe`), read it (translating an official recipe, whose decisions and
    unmapped keys are logged), and apply ``overrides``."""
    path = resolve_recipe(name)
    raw = read_yaml_mapping(path)
    from ..engine.official_recipes import is_official_recipe, translate_official_recipe

    if isinstance(raw, dict) and is_official_recipe(raw):
        translation = translate_official_recipe(path, raw)
        LOG.info(f"{path}: an official repository's recipe, translated (`pcpeft recipe {path}` prints it)")
        for decision in translation.decisions:
            LOG.info(f"  decided: {decision}")
        for key in translation.unmapped:
            LOG.warning(f"  not mapped: {key}")
        return LoadedRecipe(apply_overrides(translation.recipe, overrides), path, translation, path.read_text())
    return LoadedRecipe(apply_overrides(load_config(path), overrides), path)


__all__ = ["LoadedRecipe", "load_recipe", "read_yaml_mapping"]
