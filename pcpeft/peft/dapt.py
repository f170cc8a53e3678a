"""DAPT (Zhou et al., CVPR 2024), equal to the official code (LMD0311/DAPT, ``PointTransformer_DAPT``).

Per block (all through extension points of the shared block):

* SSF ("tfts") after ``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``, plus after the
  tokenizer and the final norm (:mod:`.ssf`'s wrapper; γ ~ N(1, 0.02), β ~ N(0, 0.02));
* the dynamic adapter, parallel to the MLP on ``SSF(norm2(x))`` (a ``block.mlp_branches`` entry, inside the MLP's
  DropPath): ``z = LN(h)``; ``ReLU(scale(z)) * up(dropout(GELU(down(z))))``; ``scale`` = Linear(D, 1), ``down``
  D -> rank (kaiming-uniform, zero bias), ``up`` zero-initialised;
* after the block, the internal prompt ``mean_tokens(GELU(adapter output)) * γ3 + β3`` is inserted after the cls
  token; one prompt per block accumulates;
* the positional embedding is added **once**, before block 0 (the official encoder adds it to the input and its
  blocks add none), so the prompts never get one;
* head input concat(cls, mean of prompts, max of patch tokens) (3C), the official ``prompt_token: mean`` /
  ``patch_token: max``; ``prompt_token="none"`` (the official ModelNet40 recipe) drops the prompts' part,
  ``patch_token="none"`` (the official OBJ_ONLY recipe) the patches' part; ``"max"`` prompts are offered too.

Trained, as the official ``part: dapt`` optimiser: names with ``cls`` (cls token, cls pos, head), ``tfts`` or
``Adapter``: 1,087,771 parameters on Point-MAE with 15 classes. Frozen BatchNorms keep updating their statistics
in train mode, as in the official runner (``update_frozen_bn_stats``).

On Point-BERT the tokenizer SSF follows ``reduce_dim``; on the ViT it follows the patch embedding and the head
reads concat(cls, mean of prompts) (the ViT head reads no patch tokens).
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import PeftConfig, PeftError, backbone_blocks, register_method
from .official import OFFICIAL_CLS, PositionOnce, TokenPooling, set_pooling
from .prompt_generator import PROMPT_CLAIM, insert_after_cls
from .ssf import BLOCK_SITES, SSFConfig

#: our SSF site -> DAPT's tfts name inside the block
_TFTS_SITES = {"norm1": "tfts_{}_1", "norm2": "tfts_{}_2", "attn.qkv": "attn.tfts_{}_1",
               "attn.proj": "attn.tfts_{}_2", "mlp.fc1": "mlp.tfts_{}_1", "mlp.fc2": "mlp.tfts_{}_2"}


class DAPTAdapter(nn.Module):
    """Dynamic adapter + this block's internal-prompt scale/shift. (B, T, D) -> (B, T, D)."""

    is_peft_layer = True
    prompt_source = True

    def __init__(self, dim: int, rank: int, dropout: float, init_std: float = 0.02) -> None:
        super().__init__()
        self.adapter_layer_norm_before = nn.LayerNorm(dim)
        self.scale = nn.Linear(dim, 1)
        self.down_proj = nn.Linear(dim, rank)
        self.up_proj = nn.Linear(rank, dim)
        self.dropout = dropout
        self.prompt_scale = nn.Parameter(1 + init_std * torch.randn(dim))
        self.prompt_shift = nn.Parameter(init_std * torch.randn(dim))
        nn.init.kaiming_uniform_(self.down_proj.weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.scale.weight, a=math.sqrt(5))
        for tensor in (self.down_proj.bias, self.up_proj.weight, self.up_proj.bias, self.scale.bias):
            nn.init.zeros_(tensor)
        self.last_output: torch.Tensor | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.adapter_layer_norm_before(h)
        down = F.dropout(F.gelu(self.down_proj(z)), p=self.dropout, training=self.training)
        out = self.up_proj(down) * F.relu(self.scale(z))
        self.last_output = out
        return out

    def prompt(self) -> torch.Tensor:
        """(B, 1, D): GELU of the last output, averaged over every token, scaled and shifted."""
        if self.last_output is None:
            raise RuntimeError("DAPT adapter: no output in this forward")
        return F.gelu(self.last_output).mean(dim=1, keepdim=True) * self.prompt_scale + self.prompt_shift


class InternalPrompts(nn.Module):
    """Sequence hook: after block i, insert block i's adapter prompt after the cls token (pos gets zeros)."""

    def __init__(self, adapters: list[DAPTAdapter]) -> None:
        super().__init__()
        object.__setattr__(self, "adapters", adapters)  # registered in their blocks

    def before_block(self, index, x, pos):
        return x, pos

    def after_block(self, index: int, x: torch.Tensor, pos: torch.Tensor | None):
        return insert_after_cls(x, pos, self.adapters[index].prompt())

    def num_added_tokens(self, depth: int) -> int:
        return depth


@register_method
@dataclasses.dataclass
class DAPTConfig(PeftConfig):
    """DAPT with the official defaults (ScanObjectNN recipes). ``ssf`` / ``prompts`` / ``pos_once`` switch parts
    off for ablations; ``rank`` 72 and ``adapter_dropout`` 0 are the official ModelNet40 values."""

    method: ClassVar[str] = "dapt"
    claims: ClassVar[frozenset[str]] = frozenset({PROMPT_CLAIM, "linear layers of every block (wrapped)"})
    official_markers: ClassVar[tuple[str, ...]] = ("tfts_gamma", "Adapter_MLP.")

    rank: int = 64
    adapter_dropout: float = 0.2
    ssf: bool = True
    prompts: bool = True
    prompt_token: str = "mean"  # "mean" | "max" | "none": the prompts' part of the head input
    patch_token: str = "max"  # "max" | "none": the patch tokens' part
    pos_once: bool = True
    update_frozen_bn_stats: bool = True

    def inject(self, backbone: nn.Module, host) -> list[str]:
        if self.ssf:
            SSFConfig().inject(backbone, host)
        adapters = []
        for block in backbone_blocks(backbone):
            adapters.append(DAPTAdapter(backbone.embed_dim, self.rank, self.adapter_dropout))
            block.mlp_branches.append(adapters[-1])
        if self.pos_once:
            host.peft_modules["dapt_position"] = PositionOnce()
            backbone.block_stack.add_sequence_hook(host.peft_modules["dapt_position"])
        if self.prompts:
            host.peft_modules["dapt_prompts"] = InternalPrompts(adapters)
            backbone.block_stack.add_sequence_hook(host.peft_modules["dapt_prompts"])
        _dapt_head(backbone, self.prompt_token if self.prompts else "none", self.patch_token)
        return [OFFICIAL_CLS]

    def official_keys(self, host) -> dict[str, str]:
        """Our keys of DAPT's tensors -> ``PointTransformer_DAPT``'s."""
        base = host.base_model
        out: dict[str, str] = {}
        if self.ssf:
            for name, official in ((base.token_output_module, "tfts_{}_1"), ("norm", "tfts_{}_2")):
                out[f"base_model.{name}.ssf_scale"] = official.format("gamma")
                out[f"base_model.{name}.ssf_shift"] = official.format("beta")
        stack = _stack_prefix(base)
        for i, block in enumerate(backbone_blocks(base)):
            prefix = f"{stack}.{i}"
            if self.ssf:
                for site in BLOCK_SITES:
                    official = _TFTS_SITES[site]
                    out[f"base_model.{prefix}.{site}.ssf_scale"] = f"{prefix}.{official.format('gamma')}"
                    out[f"base_model.{prefix}.{site}.ssf_shift"] = f"{prefix}.{official.format('beta')}"
            branch = f"base_model.{prefix}.mlp_branches.{len(block.mlp_branches) - 1}"
            for leaf in ("adapter_layer_norm_before", "scale", "down_proj", "up_proj"):
                for kind in ("weight", "bias"):
                    out[f"{branch}.{leaf}.{kind}"] = f"{prefix}.Adapter_MLP.{leaf}.{kind}"
            out[f"{branch}.prompt_scale"] = f"{prefix}.tfts_gamma_3"
            out[f"{branch}.prompt_shift"] = f"{prefix}.tfts_beta_3"
        return out


def _stack_prefix(backbone: nn.Module) -> str:
    """Dotted path of the block stack inside the backbone (``blocks.blocks`` on the point models)."""
    stack = backbone.block_stack
    for name, module in backbone.named_modules():
        if module is stack:
            return name
    raise RuntimeError("block_stack is not a sub-module of its backbone")


def _dapt_head(backbone: nn.Module, prompt_token: str, patch_token: str) -> None:
    """The official head-input choices (the cls token always)."""
    if prompt_token not in ("mean", "max", "none") or patch_token not in ("max", "none"):
        raise PeftError(f"dapt prompt_token must be mean/max/none and patch_token max/none, got "
                        f"{prompt_token!r}, {patch_token!r}")
    if prompt_token == "mean" and patch_token == "max":
        backbone.enable_prompt_pooling()  # concat(cls, mean of prompts, max of patches)
    elif prompt_token != "none" or patch_token != "max":  # (none, max) is the backbone's own pooling
        parts = 1 + (prompt_token != "none") + (patch_token != "none")
        set_pooling(backbone, "dapt", TokenPooling(f"cls, prompts {prompt_token}, patches {patch_token}",
                                                   _pooling(prompt_token, patch_token)), parts * backbone.embed_dim)


def _pooling(prompt_token: str, patch_token: str):
    def pool(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
        parts = [tokens[:, 0]]
        if prompt_token == "mean":
            parts.append(tokens[:, 1:prefix].mean(dim=1))
        elif prompt_token == "max":
            parts.append(tokens[:, 1:prefix].max(dim=1).values)
        if patch_token == "max":
            parts.append(tokens[:, prefix:].max(dim=1).values)
        return torch.cat(parts, dim=-1)
    return pool
