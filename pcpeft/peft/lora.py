"""LoRA on the attention's qkv and proj linears (Hu et al., 2021): ``W x + (alpha / r) * B A x``.

A ~ kaiming-uniform, B = 0, so the model is unchanged at init; ``merge_and_unload`` folds ``W += (alpha/r) B A``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import nn

from .base import PeftConfig, PeftError, backbone_blocks, register_method, replace_submodule


class LoRALinear(nn.Module):
    """``base(x) + scaling * lora_B(lora_A(x))`` around a frozen nn.Linear. (..., in) -> (..., out)."""

    is_peft_layer = True

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise PeftError(f"LoRA wraps nn.Linear layers, got {type(base).__name__}")
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.scaling = alpha / rank
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(self.dropout(x)))

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        self.base.weight += self.scaling * (self.lora_B.weight @ self.lora_A.weight)
        return self.base


@register_method
@dataclasses.dataclass
class LoRAConfig(PeftConfig):
    """LoRA of rank ``rank`` and scale ``alpha / rank`` on ``targets`` of every block."""

    method: ClassVar[str] = "lora"
    mergeable: ClassVar[bool] = True
    claims: ClassVar[frozenset[str]] = frozenset({"linear layers of every block (wrapped)"})

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("attn.qkv", "attn.proj")

    def inject(self, backbone: nn.Module, host) -> list[str]:
        for block in backbone_blocks(backbone):
            for site in self.targets:
                replace_submodule(block, site, LoRALinear(block.get_submodule(site), self.rank, self.alpha,
                                                          self.dropout))
        return []

    def merge(self, backbone: nn.Module) -> None:
        for name, module in list(backbone.named_modules()):
            if isinstance(module, LoRALinear):
                replace_submodule(backbone, name, module.merged())
