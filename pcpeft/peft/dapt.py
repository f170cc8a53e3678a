"""DAPT (Zhou et al., CVPR 2024): SSF everywhere + a per-block dynamic adapter + internal prompts.

Dynamic adapter, parallel to the MLP on ``LN2 x``: ``s(x) * up(act(down(x)))`` with a token-wise scale
``s(x) = ReLU(Linear(D, 1)(x))``, bottleneck 64, ``up`` zero-initialised (the output is unchanged at init).
Internal prompts: the prompt generator reads each block's adapter output (GELU, then the token mean) and the head
reads concat(cls, mean of prompts, max of point tokens), as DAPT does.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from .adapter import Bottleneck
from .base import PeftConfig, backbone_blocks, register_method
from .prompt_generator import PROMPT_CLAIM, attach_prompt_generator
from .ssf import SSFConfig


class DynamicAdapter(nn.Module):
    """Token-wise scaled bottleneck. (B, T, D) -> (B, T, D); keeps its last output for the internal prompt."""

    is_peft_layer = True
    prompt_source = True

    def __init__(self, dim: int, bottleneck: int) -> None:
        super().__init__()
        self.adapter = Bottleneck(dim, bottleneck, activation="gelu")
        self.token_scale = nn.Linear(dim, 1)
        self.last_output: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.token_scale(h)) * self.adapter(h)
        self.last_output = out
        return out


@register_method
@dataclasses.dataclass
class DAPTConfig(PeftConfig):
    """DAPT; ``ssf`` / ``prompts`` switch its two other parts off for ablations."""

    method: ClassVar[str] = "dapt"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM, "linear layers of every block (wrapped)"})

    bottleneck: int = 64
    ssf: bool = True
    prompts: bool = True

    def inject(self, backbone: nn.Module, host) -> list[str]:
        if self.ssf:
            SSFConfig().inject(backbone, host)
        for block in backbone_blocks(backbone):
            block.mlp_branches.append(DynamicAdapter(backbone.embed_dim, self.bottleneck))
        if self.prompts:
            attach_prompt_generator(backbone, host, "dapt_prompts", "gelu", head_reads_prompts=True)
        return []
