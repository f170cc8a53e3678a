"""Point-MAE and Point-BERT classification backbones ("PointTransformer" in both reference repos).

They differ only in the tokenizer width (Point-BERT: 256-d + ``reduce_dim`` Linear(256, 384)) and the head.
Data flow: points (B,N,3) -> group_divider -> encoder [-> reduce_dim] -> + cls token, positional MLP of the
centres added before every block -> blocks -> norm -> concat(cls, max of point tokens) -> cls_head_finetune.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..ops.fps import FpsBackend
from ..ops.grouping import PointGrouper
from .heads import HEADS, pool_cls_and_max
from .point_tokenizer import MiniPointNet, PositionalMLP
from .registry import register_model
from .transformer import BlockStack, TransformerEncoder


@dataclass
class PointTransformerConfig:
    """Architecture of a point backbone. Defaults are the reference Point-MAE fine-tuning model."""

    variant: str = "point_mae"  # "point_mae" | "point_bert": selects tokenizer width handling and head
    num_classes: int = 40
    num_group: int = 64
    group_size: int = 32
    trans_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    encoder_dims: int = 384
    drop_path_rate: float = 0.1
    head_hidden: int = 256
    head_dropout: float = 0.5
    fps_backend: FpsBackend = "auto"
    exclude_near_origin: bool = False


def _reference_init(module: nn.Module) -> None:
    """The reference repos' ``_init_weights``: trunc-normal(0.02) Linear/Conv1d weights, zero biases, unit LN."""
    if isinstance(module, (nn.Linear, nn.Conv1d)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PointTransformer(nn.Module):
    """Point cloud transformer classifier with the reference state-dict layout (see REFERENCE.md).

    ``forward_features(points)`` -> normalised tokens (B, 1+P+G, C) (P = prompt tokens added by PEFT hooks,
    0 for the plain backbone); ``forward_head(tokens)`` -> logits (B, classes); ``forward`` does both.
    """

    def __init__(self, config: PointTransformerConfig) -> None:
        super().__init__()
        if config.variant not in HEADS:
            raise ValueError(f"unknown point backbone variant {config.variant!r}; expected one of {list(HEADS)}")
        if config.variant == "point_mae" and config.encoder_dims != config.trans_dim:
            raise ValueError(
                f"point_mae feeds the tokenizer output straight to the blocks: encoder_dims ({config.encoder_dims}) "
                f"must equal trans_dim ({config.trans_dim})"
            )
        self.config = config
        self.num_classes = config.num_classes
        self.embed_dim = config.trans_dim
        self.num_features = 2 * config.trans_dim
        self.classifier_name = "cls_head_finetune"
        self.prompt_pooling = False

        self.group_divider = PointGrouper(config.num_group, config.group_size, config.fps_backend,
                                          config.exclude_near_origin)
        self.encoder = MiniPointNet(config.encoder_dims)
        if config.variant == "point_bert":
            self.reduce_dim = nn.Linear(config.encoder_dims, config.trans_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.trans_dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, config.trans_dim))
        self.pos_embed = PositionalMLP(config.trans_dim)
        self.blocks = TransformerEncoder(config.trans_dim, config.depth, config.num_heads, config.mlp_ratio,
                                         qkv_bias=False, drop_path_rate=config.drop_path_rate)
        self.norm = nn.LayerNorm(config.trans_dim)
        self.apply(_reference_init)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)
        # The head keeps PyTorch's default init: the reference only re-initialises it when training from scratch.
        self.cls_head_finetune = HEADS[config.variant](self.num_features, config.num_classes,
                                                       config.head_hidden, config.head_dropout)

    # -- stages -------------------------------------------------------------------------------------------------
    @property
    def block_stack(self) -> BlockStack:
        """The transformer blocks (where PEFT methods attach)."""
        return self.blocks.blocks

    @property
    def num_prefix_tokens(self) -> int:
        """cls token plus the prompt tokens PEFT hooks insert after it."""
        return 1 + self.block_stack.num_added_tokens()

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
        neighbourhoods, centres = self.group_divider(points)
        tokens = self.encoder(neighbourhoods)
        if hasattr(self, "reduce_dim"):
            tokens = self.reduce_dim(tokens)
        return tokens, centres

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) -> normalised tokens (B, 1+P+G, C), cls token first."""
        tokens, centres = self.tokenize(points)
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(batch, -1, -1), self.pos_embed(centres)], dim=1)
        return self.norm(self.blocks(x, pos))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, C) -> head input: concat(cls, max over point tokens) (B, 2C), or with prompt pooling
        concat(cls, mean of prompt tokens, max over point tokens) (B, 3C)."""
        prefix = self.num_prefix_tokens
        if self.prompt_pooling:
            return torch.cat([tokens[:, 0], tokens[:, 1:prefix].mean(dim=1), tokens[:, prefix:].max(dim=1).values],
                             dim=-1)
        return pool_cls_and_max(tokens, prefix)

    def enable_prompt_pooling(self) -> None:
        """Let the head read the prompt tokens (DAPT): its first Linear widens to 3C inputs, freshly initialised."""
        if self.prompt_pooling:
            return
        self.prompt_pooling = True
        first = self.cls_head_finetune[0]
        self.cls_head_finetune[0] = nn.Linear(3 * self.embed_dim, first.out_features)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """tokens (B, T, C) -> logits (B, classes), or the pooled feature (B, 2C) with ``pre_logits``."""
        feat = self.pool(tokens)
        return feat if pre_logits else self.cls_head_finetune(feat)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3) -> logits (B, classes)."""
        return self.forward_head(self.forward_features(points))

    def extra_repr(self) -> str:
        return f"variant={self.config.variant!r}, num_classes={self.num_classes}"

    def architecture(self) -> dict:
        """The config as a plain dict (what a checkpoint or a PEFT save records)."""
        return asdict(self.config)


@register_model("point_mae")
def point_mae(**overrides) -> PointTransformer:
    """Point-MAE fine-tuning model: 384-d tokenizer, BN head. 22,093,327 parameters with 15 classes."""
    return PointTransformer(PointTransformerConfig(variant="point_mae", **overrides))


@register_model("point_bert")
def point_bert(**overrides) -> PointTransformer:
    """Point-BERT fine-tuning model: 256-d tokenizer + reduce_dim, light head."""
    overrides.setdefault("encoder_dims", 256)
    return PointTransformer(PointTransformerConfig(variant="point_bert", **overrides))


point_mae.config_class = PointTransformerConfig
point_bert.config_class = PointTransformerConfig
