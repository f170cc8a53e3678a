"""The reference Point-MAE forward, restated as the official code writes it, for ``tools/bench.py --side_by_side``.

It reuses a pcpeft ``point_mae`` model's modules and weights but computes the way the official
``PointTransformer`` does: the plain-torch stand-ins for the CUDA grouping ops (the batched FPS loop and the
chunked kNN), the ``Encoder`` as ``Conv1d`` layers on transposed (BG, C, M) tensors, attention as an explicit
``softmax(q k^T * scale) v``, blocks ``x = x + drop_path(attn(norm1(x + pos)))``, and so on. Same function as
``model(points)`` (checked by the bench before timing).
"""
from __future__ import annotations

import torch
from torch import nn

from .ops.fps import fps_torch
from .ops.grouping import gather_points
from .ops.knn import knn_torch


def reference_encoder(encoder: nn.Module, neighbourhoods: torch.Tensor) -> torch.Tensor:
    """Point-MAE ``Encoder.forward``: (B, G, M, 3) -> (B, G, C) through Conv1d on (BG, C, M)."""
    batch, groups, size, _ = neighbourhoods.shape
    feature = encoder.first_conv(neighbourhoods.reshape(batch * groups, size, 3).transpose(2, 1))  # (BG, 256, M)
    glob = torch.max(feature, dim=2, keepdim=True)[0]
    feature = torch.cat([glob.expand(-1, -1, size), feature], dim=1)  # (BG, 512, M)
    feature = encoder.second_conv(feature)
    return torch.max(feature, dim=2, keepdim=False)[0].reshape(batch, groups, -1)


def reference_attention(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm ``Attention.forward`` with an explicit softmax. (B, T, D) -> (B, T, D)."""
    batch, tokens, dim = x.shape
    qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, dim // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    weights = (q @ k.transpose(-2, -1)) * (dim // attn.num_heads) ** -0.5
    weights = weights.softmax(dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(batch, tokens, dim)
    return attn.proj_drop(attn.proj(out))


def reference_point_mae(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    """The official Point-MAE fine-tuning forward on a plain pcpeft ``point_mae`` model. (B, N, 3) -> (B, classes)."""
    grouper = model.group_divider
    centre_idx = fps_torch(points, grouper.num_group, grouper.exclude_near_origin)
    centres = gather_points(points, centre_idx)
    neighbourhood = gather_points(points, knn_torch(points, centres, grouper.group_size)) - centres.unsqueeze(2)
    tokens = reference_encoder(model.encoder, neighbourhood)
    batch = tokens.shape[0]
    cls_tokens = model.cls_token.expand(batch, -1, -1)
    cls_pos = model.cls_pos.expand(batch, -1, -1)
    pos = model.pos_embed(centres)
    x = torch.cat((cls_tokens, tokens), dim=1)
    pos = torch.cat((cls_pos, pos), dim=1)
    for block in model.blocks.blocks:
        x = x + pos
        x = x + block.drop_path(reference_attention(block.attn, block.norm1(x)))
        x = x + block.drop_path(block.mlp(block.norm2(x)))
    x = model.norm(x)
    feature = torch.cat([x[:, 0], x[:, 1:].max(1)[0]], dim=-1)
    return model.cls_head_finetune(feature)
