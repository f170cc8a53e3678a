"""Point-MAE, Point-BERT, ACT and ReCon classification backbones ("PointTransformer" in every reference repo).

They differ only in typed options of :class:`PointTransformerConfig`, which each registered builder sets.
Point-BERT differs in the tokenizer width (256-d + ``reduce_dim`` Linear(256, 384)) and the head. ACT's
fine-tuning classifier *is* Point-MAE's; only its pre-training file layout differs (``ACT_encoder.*``). ReCon adds
two global tokens (``img_token`` / ``text_token`` with ``img_pos`` / ``text_pos``) after the cls token, blocks
whose global tokens cross-attend the patches (``num_global_tokens=3``, residuals from the normalised input) and a
head reading concat(cls, img, text, max) (4C).
Data flow: points (B,N,3) -> group_divider -> encoder [-> reduce_dim] -> + cls [img, text] tokens, positional MLP
of the centres added before every block -> blocks -> norm -> concat(global tokens, max of point tokens) ->
cls_head_finetune.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .backbone_base import PointBackboneConfig, PointClassifier
from .heads import HEADS, HeadKind, pool_cls_and_max, pool_global_tokens
from .point_tokenizer import PositionalMLP, attach_point_tokenizer, check_tokenizer_width, group_and_tokenize
from .registry import register_model
from .transformer import Residual, TransformerEncoder


@dataclass
class PointTransformerConfig(PointBackboneConfig):
    """Architecture of a point backbone. Defaults are the reference Point-MAE fine-tuning model; each registered
    builder sets the block-family options that make it Point-BERT, ACT or ReCon.

    Attributes:
        encoder_dims: the tokenizer's output width (384; Point-BERT's 256).
        tokenizer_projection: a ``reduce_dim`` Linear(encoder_dims, trans_dim) after the tokenizer (Point-BERT).
        global_tokens: learned tokens after the cls token, each with its own positional embedding, that
            cross-attend the patches in a second branch of every block (ReCon's ``("img", "text")``).
        block_residual: where each block's residuals start (``"input"``; ReCon's ``"normed"``).
        head: the classification head, ``"batchnorm"`` (Point-MAE's) or ``"light"`` (Point-BERT's).
    """

    encoder_dims: int = 384
    drop_path_rate: float = 0.1
    tokenizer_projection: bool = False
    global_tokens: tuple[str, ...] = ()
    block_residual: Residual = "input"
    head: HeadKind = "batchnorm"

    def __post_init__(self) -> None:
        self.global_tokens = tuple(self.global_tokens)


def _reference_init(module: nn.Module) -> None:
    """The reference repos' ``_init_weights``: trunc-normal(0.02) Linear/Conv1d weights, zero biases, unit LN."""
    if isinstance(module, (nn.Linear, nn.Conv1d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PointTransformer(PointClassifier):
    """Point cloud transformer classifier with the reference state-dict layout (docs/backbones.md).

    ``forward_features(points)`` -> normalised tokens (B, 1+P+G, C) (P = prompt tokens added by PEFT hooks,
    0 for the plain backbone); ``forward_head(tokens)`` -> logits (B, classes); ``forward`` does both.
    """

    def __init__(self, config: PointTransformerConfig) -> None:
        super().__init__()
        if config.head not in HEADS:
            raise ValueError(f"unknown head {config.head!r}; expected one of {list(HEADS)}")
        check_tokenizer_width(config)
        self.config = config
        self.num_classes = config.num_classes
        self.embed_dim = config.trans_dim
        self.global_tokens = config.global_tokens
        self.num_global_tokens = 1 + len(self.global_tokens)
        self.num_features = (self.num_global_tokens + 1) * config.trans_dim

        attach_point_tokenizer(self, config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.trans_dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, config.trans_dim))
        for name in self.global_tokens:
            setattr(self, f"{name}_token", nn.Parameter(torch.zeros(1, 1, config.trans_dim)))
            setattr(self, f"{name}_pos", nn.Parameter(torch.zeros(1, 1, config.trans_dim)))
        self.pos_embed = PositionalMLP(config.trans_dim)
        contrast = {"num_global_tokens": self.num_global_tokens} if self.global_tokens else {}
        self.blocks = TransformerEncoder(config.trans_dim, config.depth, config.num_heads, config.mlp_ratio,
                                         qkv_bias=False, drop_path_rate=config.drop_path_rate,
                                         residual=config.block_residual, **contrast)
        self.norm = nn.LayerNorm(config.trans_dim)
        self.apply(_reference_init)
        for name in ("cls", *self.global_tokens):
            nn.init.trunc_normal_(getattr(self, f"{name}_token"), std=0.02)
            nn.init.trunc_normal_(getattr(self, f"{name}_pos"), std=0.02)
        # The head keeps PyTorch's default init: the reference only re-initialises it when training from scratch.
        self.cls_head_finetune = HEADS[config.head](self.num_features, config.num_classes,
                                                    config.head_hidden, config.head_dropout)

    # -- stages -------------------------------------------------------------------------------------------------
    @property
    def token_output_module(self) -> str:
        """Name of the module whose output is the group token (SSF on the tokenizer output attaches here)."""
        return "reduce_dim" if hasattr(self, "reduce_dim") else "encoder"

    def tokenize(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (B, N, 3) -> group tokens (B, G, C) and their centres (B, G, 3)."""
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(
                f"{type(self).__name__} expects points of shape (B, N, 3) (xyz only), got {tuple(points.shape)}"
            )
        return group_and_tokenize(self, points)

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) -> normalised tokens (B, 1+P+G, C): cls token first, then the P prompt tokens, then
        (ReCon) the img and text tokens, then the group tokens."""
        tokens, centres = self.tokenize(points)
        batch = tokens.shape[0]
        names = ("cls", *self.global_tokens)
        x = torch.cat([*(getattr(self, f"{n}_token").expand(batch, -1, -1) for n in names), tokens], dim=1)
        pos = torch.cat([*(getattr(self, f"{n}_pos").expand(batch, -1, -1) for n in names),
                         self.pos_embed(centres)], dim=1)
        return self.norm(self.blocks(x, pos))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, C) -> head input: concat(cls, max over point tokens) (B, 2C), or with prompt pooling
        concat(cls, mean of prompt tokens, max over point tokens) (B, 3C). ReCon: concat(cls, img, text, [mean of
        prompts], max) (B, 4C or 5C)."""
        if self.head_pooling is not None:
            return self.head_pooling(tokens, self.num_prefix_tokens)
        prefix = self.num_prefix_tokens
        if self.global_tokens:
            added = prefix - self.num_global_tokens
            return pool_global_tokens(tokens, [0, *range(1 + added, prefix)],
                                      slice(1, 1 + added) if self.prompt_pooling else None, prefix)
        if self.prompt_pooling:
            return torch.cat([tokens[:, 0], tokens[:, 1:prefix].mean(dim=1), tokens[:, prefix:].max(dim=1).values],
                             dim=-1)
        return pool_cls_and_max(tokens, prefix)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """tokens (B, T, C) -> logits (B, classes), or the pooled feature (B, 2C) with ``pre_logits``."""
        feat = self.pool(tokens)
        return feat if pre_logits else self.cls_head_finetune(feat)


@register_model("point_mae")
def point_mae(**overrides) -> PointTransformer:
    """Point-MAE fine-tuning model: 384-d tokenizer, BN head. 22,093,327 parameters with 15 classes."""
    return PointTransformer(PointTransformerConfig(**overrides))


@register_model("point_bert")
def point_bert(**overrides) -> PointTransformer:
    """Point-BERT fine-tuning model: 256-d tokenizer + reduce_dim, light head."""
    options = {"encoder_dims": 256, "tokenizer_projection": True, "head": "light", "checkpoint_layout": "point_bert"}
    return PointTransformer(PointTransformerConfig(**{**options, **overrides}))


@register_model("act")
def act(**overrides) -> PointTransformer:
    """ACT fine-tuning model: Point-MAE's classifier (22,093,327 parameters with 15 classes); loads ACT's
    pre-training layout (``ACT_encoder.*``, dVAE teacher dropped)."""
    return PointTransformer(PointTransformerConfig(**{"checkpoint_layout": "act", **overrides}))


@register_model("recon")
def recon(**overrides) -> PointTransformer:
    """ReCon fine-tuning model: cls/img/text global tokens with a cross-attention branch per block, drop path 0.2
    (the official recipes'), 43,571,215 parameters with 15 classes."""
    options = {"global_tokens": ("img", "text"), "block_residual": "normed", "drop_path_rate": 0.2,
               "checkpoint_layout": "recon"}
    return PointTransformer(PointTransformerConfig(**{**options, **overrides}))


for _builder in (point_mae, point_bert, act, recon):
    _builder.config_class = PointTransformerConfig
