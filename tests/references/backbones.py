"""Independent restatements of the official PointGPT and ReCon fine-tuning forwards, for tests.

Written from the facts in docs/backbones.md (checked against CGuangyan-BIT/PointGPT ``models/PointGPT.py`` +
``models/GPT.py`` and qizekun/ReCon ``models/transformer.py``), sharing no code with ``pcpeft``: numpy FPS/kNN and
a numpy nearest-neighbour chain, ``nn.MultiheadAttention`` in sequence-first layout with a bool causal mask for
PointGPT, explicit softmax attention for ReCon, and the official module names, so each model's state dict *is*
an official fine-tune state dict. ACT's fine-tune classifier is Point-MAE's:
``tests.references.impl.RefPointTransformer``.
Also holds ``one_thread``, the autouse fixture the backbone test modules import (tiny models, shared CPU).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tests.references.impl import RefAttention, RefEncoder, RefMlp, numpy_group


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one intra-op thread (no synchronisation), far faster on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- PointGPT -----------------------------------------------------------------------------------------------------
class RefEncoderLarge(RefEncoder):
    """``Encoder_large``: first_conv 3-256-512-1024 (BN ReLU between), max, concat 2048, second_conv 2048-2048-C."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.first_conv = nn.Sequential(nn.Conv1d(3, 256, 1), nn.BatchNorm1d(256), nn.ReLU(), nn.Conv1d(256, 512, 1),
                                        nn.BatchNorm1d(512), nn.ReLU(), nn.Conv1d(512, 1024, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(2048, 2048, 1), nn.BatchNorm1d(2048), nn.ReLU(),
                                         nn.Conv1d(2048, channels, 1))


def numpy_chain(centres: np.ndarray) -> np.ndarray:
    """Greedy chain over one cloud's centres (G, 3): from 0, always the nearest unvisited (lowest index on ties)."""
    dist = np.sqrt(((centres[:, None, :].astype(np.float64) - centres[None, :, :]) ** 2).sum(-1))
    order, visited = [0], np.zeros(len(centres), dtype=bool)
    visited[0] = True
    for _ in range(len(centres) - 1):
        row = np.where(visited, np.inf, dist[order[-1]])
        order.append(int(np.argmin(row)))
        visited[order[-1]] = True
    return np.asarray(order)


def sine_positions(xyz: torch.Tensor, dim: int) -> torch.Tensor:
    """Temperature-1 sine encoding: per coordinate F = dim//3//2*2 dims of (sin 2 pi x, cos 2 pi x), then zeros."""
    pairs = dim // 3 // 2
    parts = []
    for axis in range(3):
        angle = 2 * math.pi * xyz[..., axis]
        pair = torch.stack([angle.sin(), angle.cos()], dim=-1)  # (..., 2)
        parts.append(pair.repeat(*([1] * angle.dim()), pairs))
    enc = torch.cat(parts, dim=-1)
    return torch.cat([enc, enc.new_zeros(*enc.shape[:-1], dim - enc.shape[-1])], dim=-1)


class RefGPTBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (T, B, D)
        x = self.ln_1(x)
        x = x + self.attn(x, x, x, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


def causal_mask(length: int) -> torch.Tensor:
    return torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)


class RefGPTExtractor(nn.Module):
    def __init__(self, d: int, heads: int, depth: int, classes: int, group_size: int) -> None:
        super().__init__()
        self.sos = nn.Parameter(torch.randn(d))
        self.layers = nn.ModuleList([RefGPTBlock(d, heads) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(d)
        self.increase_dim = nn.Sequential(nn.Conv1d(d, 3 * group_size, 1))
        self.cls_head_finetune = nn.Sequential(
            nn.Linear(2 * d, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, classes))
        self.cls_norm = nn.LayerNorm(d)


class RefGPTGenerator(nn.Module):
    def __init__(self, d: int, heads: int, depth: int, group_size: int) -> None:
        super().__init__()
        self.sos = nn.Parameter(torch.randn(d))
        self.layers = nn.ModuleList([RefGPTBlock(d, heads) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(d)
        self.increase_dim = nn.Sequential(nn.Conv1d(d, 3 * group_size, 1))


def ref_chamfer(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Chamfer L1 + L2 as the official CUDA extension: nearest squared distances both ways."""
    sq = torch.cdist(pred.double(), target.double()).square()
    d1, d2 = sq.min(dim=2)[0], sq.min(dim=1)[0]
    l2 = d1.mean() + d2.mean()
    l1 = (d1.sqrt().mean() + d2.sqrt().mean()) / 2
    return (l1 + l2).float()


class RefPointGPT(nn.Module):
    """Official PointGPT ``PointTransformer``: forward(points) -> (logits, generator Chamfer loss)."""

    def __init__(self, classes: int, num_group: int, group_size: int, dim: int = 384, depth: int = 12,
                 heads: int = 6, decoder_depth: int = 4, large: bool = False) -> None:
        super().__init__()
        self.num_group, self.group_size, self.dim = num_group, group_size, dim
        self.encoder = RefEncoderLarge(dim) if large else RefEncoder(dim)
        self.blocks = RefGPTExtractor(dim, heads, depth, classes, group_size)
        self.generator_blocks = RefGPTGenerator(dim, heads, decoder_depth, group_size)
        self.norm = nn.LayerNorm(dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim))
        self.sos_pos = nn.Parameter(torch.zeros(1, 1, dim))

    def group(self, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        neigh, centre = numpy_group(pts, self.num_group, self.group_size)
        orders = [torch.from_numpy(numpy_chain(c.numpy())) for c in centre]
        return (torch.stack([n[o] for n, o in zip(neigh, orders)]),
                torch.stack([c[o] for c, o in zip(centre, orders)]))

    def forward(self, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        neigh, centre = self.group(pts)
        tokens = self.encoder(neigh)
        b, g, d = tokens.shape
        h = torch.cat([self.blocks.sos.expand(b, 1, d), self.cls_token.expand(b, -1, -1), tokens], 1).transpose(0, 1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.sos_pos.expand(b, -1, -1),
                         sine_positions(centre, d)], 1).transpose(0, 1)
        mask = causal_mask(g + 2)
        for layer in self.blocks.layers:
            h = layer(h + pos, mask)
        encoded = self.blocks.ln_f(h).transpose(0, 1)  # (B, G+2, D)
        cls_in = self.blocks.cls_norm(encoded)
        logits = self.blocks.cls_head_finetune(torch.cat([cls_in[:, 1], cls_in[:, 2:].max(1)[0]], -1))
        # generator: [sos output, t_1 .. t_{G-1}] with sine([c_1, unit steps])
        feats = torch.cat([encoded[:, :1], encoded[:, 2:-1]], 1).transpose(0, 1)
        step = centre[:, 1:] - centre[:, :-1]
        rel = torch.cat([centre[:, :1], step / torch.norm(step, dim=-1, keepdim=True)], 1)
        gpos = sine_positions(rel, d).transpose(0, 1)
        gmask = causal_mask(g)
        for layer in self.generator_blocks.layers:
            feats = layer(feats + gpos, gmask)
        feats = self.generator_blocks.ln_f(feats).permute(1, 2, 0)  # (B, D, G)
        pred = self.generator_blocks.increase_dim(feats).transpose(1, 2).reshape(b * g, self.group_size, 3)
        target = (neigh + centre.unsqueeze(2)).reshape(b * g, self.group_size, 3)
        return logits, ref_chamfer(pred, target)


# -- ReCon --------------------------------------------------------------------------------------------------------
class RefCrossAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (d // heads) ** -0.5
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * d, bias=False)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, n, c = y.shape
        kv = self.kv(y).reshape(b, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q = self.q(x).reshape(b, x.shape[1], self.heads, c // self.heads).transpose(1, 2)
        attn = ((q @ kv[0].transpose(-2, -1)) * self.scale).softmax(-1)
        return self.proj((attn @ kv[1]).transpose(1, 2).reshape(b, x.shape[1], c))


class RefReconBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = RefAttention(d, heads, qkv_bias=False)
        self.mlp = RefMlp(d, 4 * d)
        self.norm1_contrast, self.norm2_contrast = nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp_contrast = RefMlp(d, 4 * d)
        self.attn_contrast = RefCrossAttention(d, heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, p = self.norm1_contrast(x[:, :3]), self.norm1(x[:, 3:])
        g = g + self.attn_contrast(g, p)
        p = p + self.attn(p)
        g, p = self.norm2_contrast(g), self.norm2(p)
        g, p = g + self.mlp_contrast(g), p + self.mlp(p)
        return torch.cat([g, p], 1)


class RefReconBlocks(nn.Module):
    def __init__(self, d: int, depth: int, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([RefReconBlock(d, heads) for _ in range(depth)])


class RefRecon(nn.Module):
    """Official ReCon fine-tune ``PointTransformer`` (``type: full``) in eval mode (no DropPath)."""

    def __init__(self, classes: int, num_group: int, group_size: int, dim: int = 384, depth: int = 12,
                 heads: int = 6) -> None:
        super().__init__()
        self.num_group, self.group_size = num_group, group_size
        self.encoder = RefEncoder(dim)
        for name in ("cls_token", "cls_pos", "img_token", "text_token", "img_pos", "text_pos"):
            setattr(self, name, nn.Parameter(torch.randn(1, 1, dim) * 0.02))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.blocks = RefReconBlocks(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = nn.Sequential(
            nn.Linear(4 * dim, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, classes))

    def forward(self, pts: torch.Tensor) -> torch.Tensor:
        neigh, centre = numpy_group(pts, self.num_group, self.group_size)
        tokens = self.encoder(neigh)
        b = tokens.shape[0]
        x = torch.cat([t.expand(b, -1, -1) for t in (self.cls_token, self.img_token, self.text_token)] + [tokens], 1)
        pos = torch.cat([t.expand(b, -1, -1) for t in (self.cls_pos, self.img_pos, self.text_pos)]
                        + [self.pos_embed(centre)], 1)
        for block in self.blocks.blocks:
            x = block(x + pos)
        x = self.norm(x)
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1], x[:, 2], x[:, 3:].max(1)[0]], -1))
