"""Parameter-efficient fine-tuning in the spirit of Hugging Face ``peft``.

    model = get_peft_model(create_model("point_mae", num_classes=15), "adapter_x")
    model.print_trainable_parameters()
"""
from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from . import methods  # noqa: F401  (registers the built-in methods)
from .adapter import AdapterConfig
from .base import PeftConfig, PeftError, PeftModel, config_from_dict, list_methods, register_method
from .dapt import DAPTConfig
from .gaprompt import GAPromptConfig
from .lora import LoRAConfig
from .most import MoSTConfig
from .pointgst import PointGSTConfig
from .pointlora import PointLoRAConfig
from .ppt import PPTConfig
from .presets import PRESETS
from .prompt_generator import PromptGeneratorConfig
from .prompts import IDPTConfig, VPTConfig
from .selective import BitFitConfig, FullConfig, LinearProbeConfig, UnfreezeConfig
from .smoa import SMoAConfig
from .ssf import SSFConfig

PeftSpec = Union[str, PeftConfig, dict, Sequence[Union[str, PeftConfig, dict]]]


def resolve_configs(spec: PeftSpec) -> list[PeftConfig]:
    """A preset name, a method name, a config, a ``{"method": ...}`` dict, or a list of those -> configs."""
    if isinstance(spec, PeftConfig):
        return [spec]
    if isinstance(spec, dict):
        return [config_from_dict(spec)]
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]()
        if spec in list_methods():
            return [config_from_dict({"method": spec})]
        raise PeftError(f"unknown PEFT method or preset {spec!r}; methods: {list_methods()}, "
                        f"presets: {sorted(PRESETS)}")
    configs: list[PeftConfig] = []
    for item in spec:
        configs += resolve_configs(item)
    return configs


def get_peft_model(model: nn.Module, spec: PeftSpec) -> PeftModel:
    """Inject the method(s) of ``spec`` into ``model`` (in place) and freeze everything they do not train."""
    return PeftModel(model, resolve_configs(spec))


def available_methods() -> list[str]:
    """Every method and preset name ``get_peft_model`` accepts."""
    return sorted(set(list_methods()) | set(PRESETS))


__all__ = [
    "AdapterConfig", "BitFitConfig", "DAPTConfig", "FullConfig", "GAPromptConfig", "IDPTConfig", "LinearProbeConfig",
    "LoRAConfig", "MoSTConfig", "PeftConfig", "PeftError", "PeftModel", "PointGSTConfig", "PointLoRAConfig",
    "PPTConfig", "PromptGeneratorConfig", "SMoAConfig",
    "SSFConfig", "UnfreezeConfig",
    "VPTConfig", "PRESETS", "available_methods", "config_from_dict", "get_peft_model", "list_methods",
    "register_method", "resolve_configs",
]
