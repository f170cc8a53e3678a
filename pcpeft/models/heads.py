"""Classification heads and the token pooling that feeds them."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

HeadKind = Literal["batchnorm", "light"]


def pool_cls_and_max(tokens: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Reference feature: concat(cls token, max over the point tokens). (B, T, D) -> (B, 2D).

    ``num_prefix_tokens`` counts the cls token plus any prompt tokens placed after it; the max runs over the
    tokens that follow them.
    """
    return torch.cat([tokens[:, 0], tokens[:, num_prefix_tokens:].max(dim=1).values], dim=-1)


def pool_global_tokens(tokens: torch.Tensor, global_index: list[int], prompts: slice | None,
                       patches_from: int) -> torch.Tensor:
    """concat(the global tokens at ``global_index``, [mean of the prompt tokens], max over the patch tokens).
    (B, T, D) -> (B, (len(global_index) + [1] + 1) * D). ReCon reads cls, img and text; PointGPT its cls slot."""
    parts = [tokens[:, i] for i in global_index]
    if prompts is not None:
        parts.append(tokens[:, prompts].mean(dim=1))
    parts.append(tokens[:, patches_from:].max(dim=1).values)
    return torch.cat(parts, dim=-1)


class PointMAEHead(nn.Sequential):
    """Point-MAE ``cls_head_finetune``: Linear BN ReLU Dropout Linear BN ReLU Dropout Linear (keys 0,1,4,5,8)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256, dropout: float = 0.5) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


class PointBERTHead(nn.Sequential):
    """Point-BERT ``cls_head_finetune``: Linear ReLU Dropout Linear (keys 0 and 3)."""

    def __init__(self, in_dim: int, num_classes: int, hidden: int = 256, dropout: float = 0.5) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )


#: the head kinds a point backbone's config names: Point-MAE's BatchNorm head (also ACT's and ReCon's), Point-BERT's
#: light one
HEADS = {"batchnorm": PointMAEHead, "light": PointBERTHead}
