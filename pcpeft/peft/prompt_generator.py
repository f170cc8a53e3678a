"""Prompt Generator (Adapter-X): one block-specific prompt token per block, made from that block's adapter output.

After block i, the output of the block's prompt-source branch (SMoA in Adapter-X, the dynamic adapter in DAPT),
optionally passed through an activation, is averaged over all tokens and turned into one prompt token by a
per-block scale and shift (2*D parameters, init N(1, 0.02) / N(0, 0.02)). The token is inserted right after the
cls token (with a zero positional embedding) and travels through the following blocks; prompts accumulate, one
per block (the last one only reaches the final norm and, with ``head_reads_prompts``, the head).

``head_reads_prompts=True`` switches the backbone's pooling to concat(cls, mean of prompts, max of point tokens)
as DAPT does (the head's first layer widens from 2D to 3D inputs and is re-initialised). The ``adapter_x``
preset keeps the reference head (False); ``dapt`` uses True.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import PeftConfig, PeftError, backbone_blocks, register_method

PROMPT_CLAIM = "the prompt-token positions after the cls token"


def insert_after_cls(x: torch.Tensor, pos: torch.Tensor | None, prompts: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Insert prompts (B, P, D) at position 1 of x (B, T, D); pos gets zeros there. -> (B, T+P, D) each."""
    x = torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1)
    if pos is not None:
        pos = torch.cat([pos[:, :1], pos.new_zeros(prompts.shape), pos[:, 1:]], dim=1)
    return x, pos


class PromptGenerator(nn.Module):
    """Per-block scale/shift turning the block's branch output into a prompt token; a BlockStack sequence hook."""

    def __init__(self, sources: list[nn.Module], dim: int, activation: str | None = None,
                 init_std: float = 0.02) -> None:
        super().__init__()
        depth = len(sources)
        object.__setattr__(self, "sources", sources)  # branches live in the blocks; do not register them twice
        self.scale = nn.Parameter(1 + init_std * torch.randn(depth, dim))
        self.shift = nn.Parameter(init_std * torch.randn(depth, dim))
        self.activation = activation

    def before_block(self, index, x, pos):
        return x, pos

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        source = self.sources[index].last_output  # (B, T, D) from this block's forward
        if source is None:
            raise PeftError(f"prompt generator: block {index}'s branch produced no output in this forward")
        if self.activation == "gelu":
            source = F.gelu(source)
        prompt = source.mean(dim=1, keepdim=True) * self.scale[index] + self.shift[index]
        return insert_after_cls(x, pos, prompt)

    def num_added_tokens(self, depth: int) -> int:
        return depth


def prompt_sources(backbone: nn.Module) -> list[nn.Module]:
    """Each block's branch flagged ``prompt_source`` (the last one added, if several)."""
    sources = []
    for index, block in enumerate(backbone_blocks(backbone)):
        found = [b for b in block.mlp_branches if getattr(b, "prompt_source", False)]
        if not found:
            raise PeftError(f"prompt_generator needs an adapter branch to read in block {index}: "
                            f"list 'smoa' (or 'dapt') before 'prompt_generator'")
        sources.append(found[-1])
    return sources


def attach_prompt_generator(backbone: nn.Module, host, name: str, activation: str | None,
                            head_reads_prompts: bool) -> PromptGenerator:
    generator = PromptGenerator(prompt_sources(backbone), backbone.embed_dim, activation)
    host.peft_modules[name] = generator
    backbone.block_stack.add_sequence_hook(generator)
    if head_reads_prompts:
        backbone.enable_prompt_pooling()
    return generator


@register_method
@dataclasses.dataclass
class PromptGeneratorConfig(PeftConfig):
    """Adapter-X prompt generator; needs a prompt-source branch (``smoa``) injected before it."""

    method: ClassVar[str] = "prompt_generator"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM})

    activation: str | None = None  # None | "gelu" (DAPT's internal prompt applies one before the average)
    head_reads_prompts: bool = False

    def inject(self, backbone: nn.Module, host) -> list[str]:
        attach_prompt_generator(backbone, host, "prompt_generator", self.activation, self.head_reads_prompts)
        return []
