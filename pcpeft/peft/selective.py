"""Methods that add no layers and only choose what trains: full, linear probe, BitFit, and named unfreezing."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import nn

from .base import PeftConfig, register_method


@register_method
@dataclasses.dataclass
class FullConfig(PeftConfig):
    """Full fine-tuning: every parameter trains, BatchNorm statistics update."""

    method: ClassVar[str] = "full"
    mergeable: ClassVar[bool] = True
    standalone: ClassVar[bool] = True

    def inject(self, backbone: nn.Module, host) -> list[str]:
        return ["*"]


@register_method
@dataclasses.dataclass
class LinearProbeConfig(PeftConfig):
    """Linear probe: the head only (the cls token stays frozen)."""

    method: ClassVar[str] = "linear"
    mergeable: ClassVar[bool] = True
    standalone: ClassVar[bool] = True
    train_cls_token: bool = False

    def inject(self, backbone: nn.Module, host) -> list[str]:
        return []


@register_method
@dataclasses.dataclass
class BitFitConfig(PeftConfig):
    """BitFit: every bias of Linear/Conv layers and every LayerNorm weight and bias.

    BatchNorm layers of the frozen tokenizer stay frozen (and in eval mode), so their statistics never move.
    """

    method: ClassVar[str] = "bitfit"
    mergeable: ClassVar[bool] = True

    def inject(self, backbone: nn.Module, host) -> list[str]:
        names = []
        for module_name, module in backbone.named_modules():
            prefix = f"{module_name}." if module_name else ""
            if isinstance(module, nn.LayerNorm):
                names += [prefix + "weight", prefix + "bias"]
            elif isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)) and module.bias is not None:
                names.append(prefix + "bias")
        return names


@register_method
@dataclasses.dataclass
class UnfreezeConfig(PeftConfig):
    """Make backbone parameters matching fnmatch ``patterns`` trainable (e.g. Adapter-X's per-block norm2)."""

    method: ClassVar[str] = "unfreeze"
    mergeable: ClassVar[bool] = True

    patterns: tuple[str, ...] = ()

    def inject(self, backbone: nn.Module, host) -> list[str]:
        return list(self.patterns)
