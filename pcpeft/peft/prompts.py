"""Prompt tuning baselines: VPT-deep (learned prompts per block) and IDPT-style dynamic prompts.

Both insert their tokens right after the cls token with a zero positional embedding.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from .base import PeftConfig, backbone_blocks, register_method
from .prompt_generator import PROMPT_CLAIM, insert_after_cls


class DeepPrompts(nn.Module):
    """VPT-deep: ``num_prompts`` learned tokens per block; block 0 inserts them, later blocks replace them."""

    def __init__(self, depth: int, num_prompts: int, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.num_prompts = num_prompts
        self.prompts = nn.Parameter(torch.randn(depth, num_prompts, dim) * init_std)

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        prompts = self.prompts[index].unsqueeze(0).expand(x.shape[0], -1, -1)
        if index == 0:
            return insert_after_cls(x, pos, prompts)
        return torch.cat([x[:, :1], prompts, x[:, 1 + self.num_prompts:]], dim=1), pos

    def after_block(self, index, x, pos):
        return x, pos

    def num_added_tokens(self, depth: int) -> int:
        return self.num_prompts


class DynamicPromptGenerator(nn.Module):
    """IDPT-style: before block ``at_block``, a per-token MLP over the point tokens, max-pooled over tokens, then a
    linear map to ``num_prompts`` prompt tokens. (B, T, D) -> inserts (B, P, D)."""

    def __init__(self, dim: int, hidden: int, num_prompts: int, at_block: int) -> None:
        super().__init__()
        self.at_block, self.num_prompts = at_block, num_prompts
        self.token_mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.to_prompts = nn.Linear(hidden, num_prompts * dim)

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        if index != self.at_block:
            return x, pos
        pooled = self.token_mlp(x[:, 1:]).max(dim=1).values
        prompts = self.to_prompts(pooled).reshape(x.shape[0], self.num_prompts, x.shape[-1])
        return insert_after_cls(x, pos, prompts)

    def after_block(self, index, x, pos):
        return x, pos

    def num_added_tokens(self, depth: int) -> int:
        return self.num_prompts


@register_method
@dataclasses.dataclass
class VPTConfig(PeftConfig):
    """VPT-deep with ``num_prompts`` tokens per block."""

    method: ClassVar[str] = "vpt"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM})

    num_prompts: int = 10

    def inject(self, backbone: nn.Module, host) -> list[str]:
        hook = DeepPrompts(len(backbone_blocks(backbone)), self.num_prompts, backbone.embed_dim)
        host.peft_modules["vpt"] = hook
        backbone.block_stack.add_sequence_hook(hook)
        return []


@register_method
@dataclasses.dataclass
class IDPTConfig(PeftConfig):
    """IDPT-style dynamic prompts generated from the tokens entering the last block (a per-token MLP stands in for
    IDPT's EdgeConv; same place, same max-pooled instance-level prompt)."""

    method: ClassVar[str] = "idpt"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM})

    num_prompts: int = 1
    hidden: int = 768

    def inject(self, backbone: nn.Module, host) -> list[str]:
        depth = len(backbone_blocks(backbone))
        hook = DynamicPromptGenerator(backbone.embed_dim, self.hidden, self.num_prompts, depth - 1)
        host.peft_modules["idpt"] = hook
        backbone.block_stack.add_sequence_hook(hook)
        return []
