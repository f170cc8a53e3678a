"""YAML recipes with ``_base_`` includes and ``key.sub=value`` overrides: one config vocabulary from file to code.

A recipe may name ``_base_: other.yaml`` or a list of them (paths relative to the recipe); bases merge in order,
then the recipe's own keys on top (dicts merge recursively, everything else replaces). Overrides
``--opts train.batch_size=16 peft=adapter_x`` are parsed as YAML values.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import UserError


class ConfigError(UserError, ValueError):
    """A recipe file or override cannot be read or applied; the message names the file or key."""


def _mark(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def yaml_error(path: str | Path, err: yaml.YAMLError) -> ConfigError:
    """A :class:`ConfigError` of one line for a file that is not valid YAML: the file, the line and column of the
    problem (counted from 1) and what the parser expected."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem is None or mark is None:
        text = " ".join(str(err).replace('in "<unicode string>", ', "").split())
        return ConfigError(f"{path}: not valid YAML ({text})")
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    where = f" ({context} at {_mark(context_mark)})" if context and context_mark is not None else ""
    return ConfigError(f"{path}, {_mark(mark)}: not valid YAML: {problem}{where}; fix the file there")


def read_yaml(path: str | Path) -> object:
    """The YAML content of the file ``path``; a one-line :class:`ConfigError` naming the file (and the line and
    column) when it is not YAML, or not text."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise yaml_error(path, err) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (YAML) file") from None


def deep_merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a recipe and its ``_base_`` chain into one dict."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: circular _base_ include via {[str(p) for p in _seen]}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    own = read_yaml(path) or {}
    if not isinstance(own, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping, found {type(own).__name__}")
    bases = own.pop("_base_", [])
    merged: dict = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = deep_merge(merged, load_config(path.parent / base, _seen + (path,)))
    return deep_merge(merged, own)


def apply_overrides(config: dict, overrides: Iterable[str]) -> dict:
    """Apply ``dotted.key=value`` strings (values parsed as YAML) to a copy of ``config``."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        node = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.setdefault(part, {}), dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = node[part]
        node[parts[-1]] = yaml.safe_load(raw)
    return config


def get(config: dict, dotted: str, default: Any = None) -> Any:
    """``get(cfg, "train.batch_size", 32)``."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def save_config(config: dict, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
