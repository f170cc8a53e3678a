"""Model registry in the spirit of timm: ``@register_model(name)`` and ``create_model(name, **overrides)``."""
from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

from torch import nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a builder under ``name``; a second builder with the same name is refused."""

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = builder
        return builder

    return add


def list_models() -> list[str]:
    """Registered model names, sorted."""
    _import_builtin_models()
    return sorted(_MODELS)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model, e.g. ``create_model('point_mae', num_classes=15, num_group=128)``.

    Unknown names and unknown keyword arguments raise ``ValueError`` / ``TypeError`` naming the valid ones.
    """
    _import_builtin_models()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(_MODELS)}")
    try:
        model = _MODELS[name](**overrides)
    except TypeError as err:
        if "unexpected keyword argument" in str(err):
            raise TypeError(f"create_model({name!r}): {err}. Valid options: {model_options(name)}") from None
        raise
    model.registered_name = name  # as timm's pretrained_cfg["architecture"]: what save_pretrained records
    return model


def model_options(name: str) -> list[str]:
    """Keyword options a registered builder accepts (dataclass fields of its config where it has one)."""
    builder = _MODELS[name]
    config_cls = getattr(builder, "config_class", None)
    if config_cls is not None and dataclasses.is_dataclass(config_cls):
        return [f.name for f in dataclasses.fields(config_cls)]
    return [p for p in inspect.signature(builder).parameters if p != "overrides"]


def model_task(name: str) -> str:
    """The task a registered model serves: its config class's ``task`` ("classification" unless it says
    otherwise, e.g. "partseg")."""
    _import_builtin_models()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(_MODELS)}")
    return getattr(getattr(_MODELS[name], "config_class", None), "task", "classification")


def _import_builtin_models() -> None:
    from . import point_mae_pretrain, point_partseg, point_transformer, pointgpt, vit  # noqa: F401  (registers
    # point_mae / point_bert / act / recon / pointgpt_{s,b,l} / vit_* / *_partseg / point_mae_pretrain)
