"""A ``--config`` value as a recipe dict: a path or a shipped recipe name, in pcpeft's dialect or translated from
an official repository's (``model: {NAME: ...}``, ``dataset: {train: {_base_: ...}}``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..engine.recipe.shipped import resolve_recipe
from ..engine.recipe.yaml_io import ConfigError, apply_overrides, load_config, read_yaml
from ..errors import UserError

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


def _translated(path: Path, raw: dict, translate: Any) -> Any:
    """``translate(path, raw)``; an official base file it reads (``dataset.train._base_``) that is not text, nests
    too deeply or holds a value YAML cannot build is a :class:`ConfigError` naming the recipe."""
    try:
        return translate(path, raw)
    except UserError:
        raise
    except (ValueError, RecursionError, yaml.YAMLError) as err:  # UnicodeDecodeError is a ValueError
        detail = (str(err).splitlines() or [""])[0][:200]
        raise ConfigError(f"{path}: dataset.train._base_: the official data-set file it names cannot be read "
                          f"({type(err).__name__}: {detail})") from None


def load_recipe(name: str | Path, overrides: Sequence[str] = ()) -> LoadedRecipe:
    """Resolve ``name`` (:func:`resolve_recipe`), read it (translating an official recipe, whose decisions and
    unmapped keys are logged), and apply ``overrides``."""
    path = resolve_recipe(name)
    raw = read_yaml_mapping(path)
    from ..engine.recipe.official import is_official_recipe, translate_official_recipe

    if isinstance(raw, dict) and is_official_recipe(raw):
        translation = _translated(path, raw, translate_official_recipe)
        LOG.info(f"{path}: an official repository's recipe, translated (`pcpeft recipe {path}` prints it)")
        for decision in translation.decisions:
            LOG.info(f"  decided: {decision}")
        for key in translation.unmapped:
            LOG.warning(f"  not mapped: {key}")
        return LoadedRecipe(apply_overrides(translation.recipe, overrides), path, translation, path.read_text())
    return LoadedRecipe(apply_overrides(load_config(path), overrides), path)


__all__ = ["LoadedRecipe", "load_recipe", "read_yaml_mapping"]
