"""YAML recipes with ``_base_`` includes and ``key.sub=value`` overrides: one config vocabulary from file to code.

A recipe may name ``_base_: other.yaml`` or a list of them (paths relative to the recipe); bases merge in order,
then the recipe's own keys on top (dicts merge recursively, everything else replaces). Overrides
``--opts train.batch_size=16 peft=adapter_x`` are parsed as YAML values.

Recipes are read as plain data (``yaml.SafeLoader``: a ``!!python/...`` tag is refused) and bounded before they are
built: a file of at most :data:`MAX_RECIPE_BYTES`, a document that unfolds (every alias counted where it is used)
to at most :data:`MAX_NODES` nodes and :data:`MAX_DEPTH` levels, without recursive aliases or integers beyond
:data:`MAX_INT_BITS` bits, and a ``_base_`` chain of at most :data:`MAX_INCLUDES` includes, each of a ``.yaml`` /
``.yml`` file, every file read once. Every failure is one :class:`ConfigError` naming the file (or the override) at
fault.
"""
from __future__ import annotations

import copy
import reprlib
from pathlib import Path
from typing import Any, Iterable

import yaml

from ...errors import UserError

#: the largest recipe file read (the shipped ones take a few kB)
MAX_RECIPE_BYTES = 1 << 20
#: nodes a YAML document may unfold to, aliases counted every time they are used, and its deepest nesting
MAX_NODES = 100_000
MAX_DEPTH = 64
#: _base_ includes one recipe may follow, repeats counted
MAX_INCLUDES = 64
#: the largest integer a recipe may hold, in bits (larger ones cannot even be printed in an error message)
MAX_INT_BITS = 256
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80


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
    column) when it is not YAML, or not text, or beyond the bounds of the module docstring."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_RECIPE_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes; a recipe file is at most {MAX_RECIPE_BYTES:,}")
        text = Path(path).read_text()
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (YAML) file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror or err})") from None
    return parse_yaml(text, path)


def parse_yaml(text: str, source: str | Path) -> object:
    """The data of one YAML document (``yaml.safe_load``), checked to unfold within the bounds before it is built;
    a one-line :class:`ConfigError` naming ``source`` otherwise."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_unfolded(node, source)
        data = loader.construct_document(node)
        _check_numbers(data, source)
        return data
    except yaml.YAMLError as err:
        raise yaml_error(source, err) from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid YAML: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError, OverflowError) as err:  # a scalar its constructor rejects (month 13, 10**5000)
        raise ConfigError(f"{source}: not valid YAML: a value cannot be read ({str(err)[:200]})") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_numbers(data: Any, source: str | Path) -> None:
    """Refuse integers beyond :data:`MAX_INT_BITS` bits (``0x`` followed by thousands of digits)."""
    seen: set[int] = set()
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise ConfigError(f"{source}: not valid YAML for a recipe: a number of {value.bit_length()} bits; "
                              f"recipe numbers have at most {MAX_INT_BITS}")
        if isinstance(value, (list, dict, set)) and id(value) not in seen:
            seen.add(id(value))
            pending.extend(value)  # a dict's keys
            pending.extend(value.values() if isinstance(value, dict) else ())


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_unfolded(root: yaml.Node, source: str | Path) -> None:
    """Refuse a document whose aliases unfold beyond :data:`MAX_NODES` nodes or :data:`MAX_DEPTH` levels, or refer
    to a node that contains them (a recursive alias); every later step walks the unfolded data."""
    unfolded: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) of the node unfolded
    ancestors: set[int] = set()
    pending: list[tuple[yaml.Node, bool]] = [(root, False)]
    while pending:
        node, finished = pending.pop()
        if finished:
            ancestors.discard(id(node))
            below = [unfolded[id(child)] for child in _children(node)]
            nodes, depth = 1 + sum(n for n, _ in below), 1 + max((d for _, d in below), default=0)
            if nodes > MAX_NODES or depth > MAX_DEPTH:
                raise ConfigError(f"{source}: not valid YAML for a recipe: it unfolds (aliases counted where they "
                                  f"are used) to more than {MAX_NODES:,} values or {MAX_DEPTH} levels")
            unfolded[id(node)] = (nodes, depth)
        elif id(node) in ancestors:
            raise ConfigError(f"{source}: not valid YAML for a recipe: an alias refers to a node that contains it")
        elif id(node) not in unfolded:
            ancestors.add(id(node))
            pending.append((node, True))
            pending.extend((child, False) for child in _children(node))


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
    return _load(Path(path).resolve(), _seen, {}, [0])


def _load(path: Path, seen: tuple[Path, ...], done: dict[Path, dict], includes: list[int]) -> dict:
    """``load_config`` of ``path`` included through ``seen``; ``done`` holds the bases already read (each file is
    read once however often it is included) and ``includes`` counts the includes followed."""
    if path in seen:
        raise ConfigError(f"{path}: circular _base_ include via {[str(p) for p in seen]}")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    own = read_yaml(path) or {}
    if not isinstance(own, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping, found {type(own).__name__}")
    merged: dict = {}
    for base in _base_paths(own.pop("_base_", None), path):
        includes[0] += 1
        if includes[0] > MAX_INCLUDES:
            raise ConfigError(f"{path}: its _base_ chain includes more than {MAX_INCLUDES} files")
        if base not in done:
            done[base] = _load(base, seen + (path,), done, includes)
        merged = deep_merge(merged, done[base])
    return deep_merge(merged, own)


def _base_paths(bases: Any, path: Path) -> list[Path]:
    """The files a recipe's ``_base_`` (a file name or a list of them, relative to the recipe) names, each checked
    to be an existing ``.yaml`` / ``.yml`` file."""
    if bases is None:
        return []
    names = [bases] if isinstance(bases, str) else bases
    if not isinstance(names, list) or not all(isinstance(n, str) and n and "\0" not in n for n in names):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names, found {_SHORT.repr(bases)}")
    found = []
    for name in names:
        if Path(name).suffix not in (".yaml", ".yml"):
            raise ConfigError(f"{path}: _base_ {_SHORT.repr(name)} is not a .yaml file")
        try:
            target = (path.parent / name).resolve()
        except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
            raise ConfigError(f"{path}: _base_ {_SHORT.repr(name)} cannot be resolved ({err})") from None
        if not target.is_file():
            raise ConfigError(f"{path}: _base_ {_SHORT.repr(name)} -> {target}: no such file")
        found.append(target)
    return found


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
        node[parts[-1]] = parse_yaml(raw, f"override {item!r}")
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
