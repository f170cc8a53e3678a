"""PointGPT-S/B/L fine-tuning classifiers (CGuangyan-BIT/PointGPT ``PointTransformer``), built from the shared block.

Differences from Point-MAE, each an option of the shared code (docs/backbones.md has the facts):

* token order: the FPS centres are re-ordered by a greedy nearest-neighbour chain from centre 0;
* tokens ``[sos, cls, t_1 .. t_G]`` with positions ``[cls_pos, sos_pos, sine(c_1) .. sine(c_G)]`` (the official
  code puts ``cls_pos`` on the sos slot and ``sos_pos`` on the cls slot), added before every block;
* blocks: fused qkv *with* bias, causal attention, attention residual from the normalised input, no DropPath;
* head: ``norm`` (official ``blocks.ln_f``), ``cls_norm``, concat(cls slot, max of the patch tokens), Point-MAE's
  head;
* a 4-block generator predicts every patch from the previous tokens; in training mode the forward records
  ``Chamfer-L1 + Chamfer-L2`` of the prediction against the absolute patch points, returned by
  :meth:`PointGPT.auxiliary_loss` (the official loss is ``CE + aux_loss_weight * aux`` with weight 3).

Prompt tokens of PEFT sequence hooks are inserted after position 0 (the sos token): ``[sos, prompts, cls,
t_1 ..]``. Under the causal mask the cls token and every patch token see all prompts; a prompt sees sos and the
prompts before it.

Official key names map onto ours at load time (:mod:`.layouts`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

import torch
from torch import nn

from .backbone_base import PointBackboneConfig, PointClassifier
from .chamfer import chamfer_l1, chamfer_l2
from .heads import PointMAEHead, pool_global_tokens
from .layouts import CheckpointLayout
from .point_tokenizer import LARGE_WIDTHS, SMALL_WIDTHS, MiniPointNet, SinePositionalEncoding
from .point_transformer import _reference_init
from .registry import register_model
from .token_order import ChainOrderedGrouper
from .transformer import BlockStack, TransformerEncoder

#: the PointGPT block: fused qkv with bias, causal, attention residual from the normalised input, no DropPath
GPT_BLOCK = {"qkv_bias": True, "causal": True, "residual": "normed_attn", "drop_path_rate": 0.0}


@dataclass
class PointGPTConfig(PointBackboneConfig):
    """Architecture of a PointGPT classifier. Defaults are PointGPT-S."""

    tokenizer: Literal["small", "large"] = "small"  # Point-MAE's (S) | B, L's: 3-256-512-1024, 2048-2048-C
    checkpoint_layout: CheckpointLayout = "pointgpt"
    decoder_depth: int = 4
    generator_loss: bool = True  # record the generator's Chamfer loss in training forwards


class PatchGenerator(nn.Module):
    """The official ``GPT_generator``: causal blocks, ``norm`` (ln_f), ``increase_dim`` Conv1d(C, 3M).
    features (B, G, C), positions (B, G, C) -> predicted patches (B*G, M, 3). ``sos`` exists in the official
    state dict and is unused by its forward."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float, group_size: int) -> None:
        super().__init__()
        self.sos = nn.Parameter(torch.zeros(dim))
        self.blocks = BlockStack(dim, depth, num_heads, mlp_ratio, **GPT_BLOCK)
        self.norm = nn.LayerNorm(dim)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * group_size, 1))

    def forward(self, features: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.blocks(features, positions))
        out = self.increase_dim(h.transpose(1, 2)).transpose(1, 2)  # (B, G, 3M)
        return out.reshape(out.shape[0] * out.shape[1], -1, 3)


class PointGPT(PointClassifier):
    """PointGPT classifier. ``forward_features(points)`` -> tokens after ``norm`` (B, 2+P+G, C) (sos, P prompts,
    cls, patches); ``forward_head(tokens)`` -> logits (B, classes); ``forward`` does both."""

    aux_loss_weight: ClassVar[float] = 3.0
    #: head parameters besides ``cls_head_finetune`` (trained with it by every PEFT method)
    head_extra_patterns: ClassVar[tuple[str, ...]] = ("cls_norm.*",)

    def __init__(self, config: PointGPTConfig) -> None:
        super().__init__()
        if config.tokenizer not in ("small", "large"):
            raise ValueError(f"tokenizer must be 'small' or 'large', got {config.tokenizer!r}")
        self.config = config
        dim = config.trans_dim
        self.num_classes = config.num_classes
        self.embed_dim = dim
        self.num_features = 2 * dim
        self.num_global_tokens = 2  # sos, cls
        self.token_output_module = "encoder"

        self.group_divider = ChainOrderedGrouper(config.num_group, config.group_size, config.fps_backend,
                                                 config.exclude_near_origin)
        self.encoder = MiniPointNet(dim, LARGE_WIDTHS if config.tokenizer == "large" else SMALL_WIDTHS)
        self.pos_embed = SinePositionalEncoding(dim, temperature=1.0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.sos_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.sos = nn.Parameter(torch.zeros(dim))
        self.blocks = TransformerEncoder(dim, config.depth, config.num_heads, config.mlp_ratio, **GPT_BLOCK)
        self.norm = nn.LayerNorm(dim)
        self.increase_dim = nn.Sequential(nn.Conv1d(dim, 3 * config.group_size, 1))  # official, unused
        self.spare_norm = nn.LayerNorm(dim)  # the official top-level ``norm``, unused by the forward
        self.generator = PatchGenerator(dim, config.decoder_depth, config.num_heads, config.mlp_ratio,
                                        config.group_size)
        self.cls_norm = nn.LayerNorm(dim)
        self.apply(_reference_init)
        for token in (self.cls_token, self.cls_pos):
            nn.init.trunc_normal_(token, std=0.02)
        nn.init.normal_(self.sos)
        nn.init.normal_(self.generator.sos)
        self.cls_head_finetune = PointMAEHead(self.num_features, config.num_classes, config.head_hidden,
                                              config.head_dropout)
        self._aux: torch.Tensor | None = None

    # -- stages -------------------------------------------------------------------------------------------------
    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) -> tokens after ``norm`` (B, 2+P+G, C). In training mode (with ``generator_loss``)
        also records the generator loss for :meth:`auxiliary_loss`."""
        self._aux = None
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(
                f"{type(self).__name__} expects points of shape (B, N, 3) (xyz only), got {tuple(points.shape)}"
            )
        neighbourhoods, centres = self.group_divider(points)  # in nearest-neighbour chain order
        tokens = self.encoder(neighbourhoods)
        batch, _, dim = tokens.shape
        x = torch.cat([self.sos.expand(batch, 1, dim), self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(batch, -1, -1), self.sos_pos.expand(batch, -1, -1),
                         self.pos_embed(centres)], dim=1)
        h = self.norm(self.blocks(x, pos))
        if self.training and self.config.generator_loss:
            self._aux = self.generation_loss(h, neighbourhoods, centres)
        return h

    def generation_loss(self, tokens: torch.Tensor, neighbourhoods: torch.Tensor, centres: torch.Tensor
                        ) -> torch.Tensor:
        """Chamfer-L1 + Chamfer-L2 of the generator's patches. tokens (B, T, C) from :meth:`forward_features`,
        neighbourhoods (B, G, M, 3) relative, centres (B, G, 3) -> scalar.

        The generator reads [sos output, outputs of t_1 .. t_{G-1}] with positions sine([c_1, unit(c_i - c_{i-1})])
        and predicts the absolute points of every patch.
        """
        prefix, groups = self.num_prefix_tokens, centres.shape[1]
        features = torch.cat([tokens[:, :1], tokens[:, prefix:prefix + groups - 1]], dim=1)
        step = centres[:, 1:] - centres[:, :-1]
        position = torch.cat([centres[:, :1], step / step.norm(dim=-1, keepdim=True)], dim=1)
        predicted = self.generator(features, self.pos_embed(position))
        target = (neighbourhoods + centres.unsqueeze(2)).reshape(predicted.shape[0], -1, 3)
        return chamfer_l1(predicted, target) + chamfer_l2(predicted, target)

    def auxiliary_loss(self) -> torch.Tensor:
        """The generator loss of the last forward (unweighted; 0 when it ran in eval mode or without a generator
        loss). Fine-tuning minimises ``CE + aux_loss_weight * auxiliary_loss()``."""
        if self._aux is None:
            return torch.zeros((), device=self.cls_token.device)
        return self._aux

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens after ``cls_norm`` (B, T, C) -> concat(cls slot, [mean of prompts], max over patches).

        A pooling set by :meth:`set_head_pooling` gets the Point-MAE view of the sequence, [cls, prompts, tokens
        after the prefix] (sos left out), and ``num_prefix_tokens - 1``.
        """
        prefix = self.num_prefix_tokens
        if self.head_pooling is not None:
            view = torch.cat([tokens[:, prefix - 1:prefix], tokens[:, 1:prefix - 1], tokens[:, prefix:]], dim=1)
            return self.head_pooling(view, prefix - 1)
        return pool_global_tokens(tokens, [prefix - 1], slice(1, prefix - 1) if self.prompt_pooling else None,
                                  prefix)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """tokens (B, T, C) from :meth:`forward_features` -> logits (B, classes) (or the pooled feature)."""
        feat = self.pool(self.cls_norm(tokens))
        return feat if pre_logits else self.cls_head_finetune(feat)


_SIZES = {
    "pointgpt_s": {"trans_dim": 384, "depth": 12, "num_heads": 6, "tokenizer": "small"},
    "pointgpt_b": {"trans_dim": 768, "depth": 12, "num_heads": 12, "tokenizer": "large"},
    "pointgpt_l": {"trans_dim": 1024, "depth": 24, "num_heads": 16, "tokenizer": "large"},
}


def _builder(name: str) -> Callable[..., PointGPT]:
    def build(**overrides) -> PointGPT:
        options = {**_SIZES[name], **overrides}
        return PointGPT(PointGPTConfig(**options))

    build.__name__ = name
    build.__doc__ = f"PointGPT-{name[-1].upper()} fine-tuning classifier ({_SIZES[name]})."
    build.config_class = PointGPTConfig
    return register_model(name)(build)


pointgpt_s = _builder("pointgpt_s")
pointgpt_b = _builder("pointgpt_b")
pointgpt_l = _builder("pointgpt_l")
