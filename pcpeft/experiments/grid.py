"""A sweep's grid: recipes x axes -> trials, each an ordinary pcpeft run, checked before any trial starts.

A grid is given on the command line (``--grid peft=linear,ssf seed=0,1,2 optimizer.lr=1e-3,2e-3``) or in a YAML
file with the same content::

    recipes: [finetune_synthetic]            # one or more recipes (names or paths)
    axes:                                    # every combination is a trial
      peft: [linear, ssf]
      seed: [0, 1, 2]
      optimizer.lr: [1.0e-3, 2.0e-3]
      setting:                               # a bundled axis: each value sets several keys at once
        - {name: 5w10s, dataset.way: 5, dataset.shot: 10, model.num_classes: 5}
    opts: [scheduler.epochs=50]              # overrides of every trial
    select: [optimizer.lr]                   # chosen per cell on the validation split
    replicate: seed                          # the axis the table averages over (seed; dataset.fold for few-shot)
    ckpts: pretrain.pth                      # the pre-trained file of every trial (an axis may vary it)
    resources: {cpu: 1, gpu: 0}              # what each trial asks Ray for

Axes are ``peft`` (``ssf+smoa`` composes), ``seed``, ``recipe``, ``ckpts``, ``model`` (``model.name``) or any
dotted recipe key. A trial's
folder is ``OUT/<recipe>/<axis=value,...>``, the recipe's part named as ``pcpeft train`` names it below
``experiments/``.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engine.recipe.yaml_io import ConfigError, read_yaml

#: axes that are not recipe keys
SPECIAL_AXES = ("peft", "seed", "recipe", "ckpts", "model")


class Resources(BaseModel):
    """What one trial asks Ray for."""

    model_config = ConfigDict(extra="forbid")
    cpu: float = Field(1.0, gt=0, description="CPU cores per trial (torch threads follow it)")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial (fractions share one GPU)")


class SweepSpec(BaseModel):
    """A whole sweep as written in its YAML file (or built from the command line)."""

    model_config = ConfigDict(extra="forbid")
    recipes: list[str] = Field(min_length=1, description="recipe names or paths")
    axes: dict[str, list[Any]] = Field(default_factory=dict, description="axis -> values")
    opts: list[str] = Field(default_factory=list, description="overrides applied to every trial")
    select: list[str] = Field(default_factory=list, description="axes chosen per cell on the validation split")
    replicate: str = Field("seed", description="the axis the table averages over")
    ckpts: str | None = Field(None, description="pre-trained file of every trial")
    resources: Resources = Field(default_factory=Resources)


@dataclass(frozen=True)
class Trial:
    """One run of the grid: its recipe, its axis values and what they mean for ``train``."""

    recipe: str
    axes: dict[str, Any]
    overrides: tuple[str, ...]
    peft: Any = None
    seed: int = 0
    ckpts: str | None = None
    name: str = ""
    cell: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """A JSON-safe record (``trial.json`` of the run folder, Ray's trial config)."""
        return {"recipe": self.recipe, "axes": self.axes, "overrides": list(self.overrides), "peft": self.peft,
                "seed": self.seed, "ckpts": self.ckpts, "name": self.name, "cell": self.cell}

    @classmethod
    def from_dict(cls, record: dict) -> "Trial":
        return cls(record["recipe"], dict(record["axes"]), tuple(record["overrides"]), record.get("peft"),
                   int(record.get("seed", 0)), record.get("ckpts"), record["name"], dict(record.get("cell", {})))


def parse_value(text: str) -> Any:
    """A command-line grid value as YAML (``1e-3`` -> 0.001, ``true`` -> True, ``ssf`` -> 'ssf')."""
    if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+", text):
        return float(text)  # YAML 1.1 reads 1e-3 as a string
    value = yaml.safe_load(text)
    return text if value is None else value


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["peft=linear,ssf", "seed=0,1"]`` -> ``{"peft": ["linear", "ssf"], "seed": [0, 1]}``."""
    axes: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: an axis is written KEY=V1,V2,...")
        key, values = item.split("=", 1)
        key = key.strip()
        if not key or key in axes:
            raise ConfigError(f"--grid {item!r}: {'an empty axis name' if not key else f'axis {key} given twice'}")
        parts = [v.strip() for v in values.split(",")]
        if not all(parts):
            raise ConfigError(f"--grid {item!r}: an empty value")
        axes[key] = [parse_value(v) if key not in ("peft", "recipe", "ckpts", "model") else v for v in parts]
    return axes


def read_sweep_file(path: str | Path) -> SweepSpec:
    """A sweep YAML file as a :class:`SweepSpec`; :class:`ConfigError` naming the file and key otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep file")
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping with recipes, axes, opts, select, replicate, resources")
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value["name"]) if "name" in value else ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("/", "~").replace(" ", "")


def _recipe_label(recipe: str) -> str:
    """The recipe's folder below the sweep folder, as ``pcpeft train`` names it below ``experiments/``."""
    from ..engine.recipe.shipped import resolve_recipe
    from ..engine.runs.folders import recipe_run_name

    return recipe_run_name(resolve_recipe(recipe)).as_posix()


def trial_name(axes: dict[str, Any]) -> str:
    """The trial's folder name from its axis values (``peft=ssf,seed=0,optimizer.lr=0.001``)."""
    return ",".join(f"{key}={_value_text(value)}" for key, value in axes.items()) or "default"


def _apply_axis(key: str, value: Any, trial: dict) -> None:
    if isinstance(value, dict):
        for sub, sub_value in value.items():
            if sub != "name":
                _apply_axis(sub, sub_value, trial)
        return
    if key == "peft":
        parts = [p for p in str(value).split("+") if p]
        trial["peft"] = parts[0] if len(parts) == 1 else parts  # ssf+smoa: a composition
    elif key == "seed":
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"axis seed: {value!r} is not an integer")
        trial["seed"] = value
    elif key == "ckpts":
        trial["ckpts"] = value
    elif key == "recipe":
        trial["recipe"] = value
    elif key == "model":
        trial["overrides"].append(f"model.name={value}")
    else:
        trial["overrides"].append(f"{key}={json.dumps(value)}")  # JSON is YAML: the override reads it back


def expand(spec: SweepSpec) -> list[Trial]:
    """Every trial of the grid, in a stable order (recipes first, then the axes as written)."""
    axes = dict(spec.axes)
    recipes = axes.pop("recipe", None) or spec.recipes
    if "recipe" in spec.axes and len(spec.recipes) > 1:
        raise ConfigError("give the recipes either as 'recipes' or as the axis 'recipe', not both")
    for key, values in axes.items():
        if not values:
            raise ConfigError(f"axis {key} has no values")
    for key in spec.select:
        if key not in axes:
            raise ConfigError(f"select: {key} is not an axis of the grid ({', '.join(axes) or 'none'})")
    if spec.replicate != "seed" and spec.replicate not in axes:
        raise ConfigError(f"replicate: {spec.replicate} is not an axis of the grid")
    trials = []
    for recipe in recipes:
        for combination in itertools.product(*axes.values()):
            values = dict(zip(axes, combination))
            trial: dict[str, Any] = {"recipe": recipe, "overrides": list(spec.opts), "peft": None, "seed": 0,
                                     "ckpts": spec.ckpts}
            for key, value in values.items():
                _apply_axis(key, value, trial)
            cell = {k: _value_text(v) for k, v in values.items() if k != spec.replicate and k not in spec.select}
            trials.append(Trial(trial["recipe"], values, tuple(trial["overrides"]), trial["peft"], trial["seed"],
                                trial["ckpts"], f"{_recipe_label(trial['recipe'])}/{trial_name(values)}",
                                {"recipe": _recipe_label(trial["recipe"]), **cell}))
    names = [t.name for t in trials]
    if len(set(names)) != len(names):
        raise ConfigError("two trials of the grid get one folder name: make the axis values distinct")
    return trials


def check_trials(trials: list[Trial], check_files: bool = True) -> None:
    """Validate every trial's recipe, overrides and method before any trial starts (and, with ``check_files``,
    that its ``ckpts`` file exists): one :class:`ConfigError` naming the trial and what is wrong."""
    from ..commands.recipe_input import load_recipe
    from ..engine.recipe.schema import validate_recipe
    from ..errors import UserError
    from ..peft import resolve_configs

    for trial in trials:
        try:
            recipe = load_recipe(trial.recipe, trial.overrides)
            settings = validate_recipe(recipe.config, str(recipe.path))
            spec = trial.peft if trial.peft is not None else settings.peft
            if spec is not None:
                resolve_configs(spec)
            if check_files and trial.ckpts is not None and not Path(trial.ckpts).is_file():
                raise ConfigError(f"ckpts {trial.ckpts}: no such file")
        except UserError as err:
            raise ConfigError(f"trial {trial.name}: {err}") from None


__all__ = ["Resources", "SweepSpec", "Trial", "check_trials", "expand", "parse_grid", "read_sweep_file",
           "trial_name"]
