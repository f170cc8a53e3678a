"""AdaptFormer-style bottleneck adapter, one per block, parallel to the MLP: ``x + MLP(LN2 x) + s * A(LN2 x)``."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from .base import PeftConfig, backbone_blocks, register_method


class Bottleneck(nn.Module):
    """down (D -> r), activation, up (r -> D) with ``up`` zero-initialised. (..., D) -> (..., D)."""

    def __init__(self, dim: int, bottleneck: int, activation: str = "relu") -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = nn.ReLU() if activation == "relu" else nn.GELU()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.kaiming_uniform_(self.down.weight, a=5 ** 0.5)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.act(self.down(x)))


class ScaledBranch(nn.Module):
    """``scale * module(h)``: a parallel MLP branch (lives in ``block.mlp_branches``)."""

    is_peft_layer = True

    def __init__(self, module: nn.Module, scale: float) -> None:
        super().__init__()
        self.module = module
        self.scale = scale

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.scale * self.module(h)


@register_method
@dataclasses.dataclass
class AdapterConfig(PeftConfig):
    """One bottleneck adapter per block, not shared. AdaptFormer's scale 0.1 and ReLU."""

    method: ClassVar[str] = "adapter"

    bottleneck: int = 32
    scale: float = 0.1
    activation: str = "relu"

    def inject(self, backbone: nn.Module, host) -> list[str]:
        dim = backbone.embed_dim
        for block in backbone_blocks(backbone):
            block.mlp_branches.append(ScaledBranch(Bottleneck(dim, self.bottleneck, self.activation), self.scale))
        return []
