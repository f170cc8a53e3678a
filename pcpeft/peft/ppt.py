"""PPT - positional prompt tuning (Zhang et al., 2024), equal to the official code (zsc000722/PPT, ``models/PPT.py``).

* **Positional prompts.** The official model groups the cloud a second time with the same settings (128 groups
  of 32 on ScanObjectNN) and tokenizes it with the same tokenizer and positional MLP, so its 128 "positional
  prompt" tokens and their positions *equal* the patch tokens and theirs. pcpeft appends a copy of the patch
  tokens and of their positions before block 0: ``[cls, t_1..t_G, p_1..p_G]`` (a second grouping with other
  settings is not offered).
* **Every block**, after the positional embedding is added: ``x[:, patches] += prompt_mlp(x[:, patches])`` and
  ``x[:, prompts] += prompt_pos_mlp(x[:, prompts])``; in the block, ``prompt_all_mlp`` reads the stream after the
  attention residual (un-normalised) and its output is added after the MLP residual, outside DropPath. Each MLP
  is Linear(D, 256) GELU Linear(256, D), trunc-normal(0.02) weights, zero biases, **one MLP shared by all blocks**.
* **Head**: concat(cls, mean of the patch tokens, mean of the prompt tokens) (3C, means, not max), and the head's
  activations are GELU instead of ReLU.
* **Trained**, as the official runner (``type: pos``): names with ``cls``, ``prompt``, ``first_conv`` or
  ``pos_embed``, i.e. cls token and pos, head, the three MLPs, the tokenizer's first conv stack (BatchNorm
  included) and the positional MLP: 1,042,191 on Point-MAE with 15 classes. Frozen BatchNorms keep updating
  their statistics in train mode, as in the official runner.

The official "PPT on ReCon" builds this same model (Point-MAE's architecture) from ReCon's pre-training file; on
pcpeft's ``recon`` backbone (blocks with a global-token branch) PPT is refused with that explanation. On the ViT
the prompts copy the patch tokens (positions already added), the positional embedding trains (``pos_embed``) and
there is no ``first_conv``.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from .base import PeftConfig, register_method
from .official import OFFICIAL_CLS, StreamTap, TokenPooling, prefix_tokens, set_pooling, tap_blocks

PPT_CLAIM = "tokens appended after the patch tokens"


def prompt_mlp(dim: int, hidden: int = 256) -> nn.Sequential:
    mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
    for layer in (mlp[0], mlp[2]):
        nn.init.trunc_normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)
    return mlp


class PositionalPrompts(nn.Module):
    """The three shared MLPs and the sequence hook that appends and updates the positional prompts.

    Sequence (B, P + 2G, D): P prefix tokens, G patch tokens, G prompt tokens.
    """

    appends_tokens = True  # the prompts follow the patches (a segmentation model strips them from the end)

    def __init__(self, dim: int, prefix: int, hidden: int = 256) -> None:
        super().__init__()
        self.prefix = prefix
        self.prompt_mlp = prompt_mlp(dim, hidden)
        self.prompt_pos_mlp = prompt_mlp(dim, hidden)
        self.prompt_all_mlp = prompt_mlp(dim, hidden)
        self.taps: list[StreamTap] = []
        self._pos: torch.Tensor | None = None

    def before_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        p = self.prefix
        if index == 0:  # the positional prompts: a copy of the patch tokens and of their positions
            x = torch.cat([x, x[:, p:]], dim=1)
            pos = None if pos is None else torch.cat([pos, pos[:, p:]], dim=1)
        groups = (x.shape[1] - p) // 2
        self._pos = pos
        y = x if pos is None else x + pos
        patches, prompts = y[:, p:p + groups], y[:, p + groups:]
        y = torch.cat([y[:, :p], patches + self.prompt_mlp(patches), prompts + self.prompt_pos_mlp(prompts)], dim=1)
        return y, None  # the positions are in y already; after_block hands them back

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        pos, self._pos = self._pos, None
        return x + self.taps[index].take(), pos

    def num_added_tokens(self, depth: int) -> int:
        return 0  # the prompts follow the patch tokens; nothing is inserted after the cls token


def _cls_mean_mean(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    """(B, P + 2G, C) -> concat(cls = the last prefix token, mean of the G patches, mean of the G prompts)."""
    groups = (tokens.shape[1] - prefix) // 2
    return torch.cat([tokens[:, prefix - 1], tokens[:, prefix:prefix + groups].mean(dim=1),
                      tokens[:, prefix + groups:].mean(dim=1)], dim=-1)


@register_method
@dataclasses.dataclass
class PPTConfig(PeftConfig):
    """PPT with the official defaults; ``hidden`` is the MLPs' width (256)."""

    method: ClassVar[str] = "ppt"
    claims: ClassVar[frozenset[str]] = frozenset({PPT_CLAIM, "norm2 of every block (wrapped)"})
    official_markers: ClassVar[tuple[str, ...]] = ("blocks.prompt_mlp.",)

    hidden: int = 256
    gelu_head: bool = True
    update_frozen_bn_stats: bool = True

    def inject(self, backbone: nn.Module, host) -> list[str]:
        hook = PositionalPrompts(backbone.embed_dim, prefix_tokens(backbone), self.hidden)
        hook.taps = tap_blocks(backbone, "ppt", lambda index: hook.prompt_all_mlp)
        host.peft_modules["ppt"] = hook
        backbone.block_stack.add_sequence_hook(hook)
        set_pooling(backbone, "ppt", TokenPooling("cls, mean of patches, mean of prompts", _cls_mean_mean),
                    3 * backbone.embed_dim)
        if self.gelu_head and backbone.classifier_name:  # a segmentation model has no classification head
            head = backbone.get_submodule(backbone.classifier_name)
            for name, module in list(head.named_children()):
                if isinstance(module, nn.ReLU):
                    setattr(head, name, nn.GELU())
        return [OFFICIAL_CLS, "encoder.first_conv.*", "pos_embed", "pos_embed.*"]

    def official_keys(self, host) -> dict[str, str]:
        return {f"peft_modules.ppt.{key}": f"blocks.{key}" for key in host.peft_modules["ppt"].state_dict()}
