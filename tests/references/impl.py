"""An independent restatement of the reference PointTransformer (Point-MAE / Point-BERT fine-tune model), for tests.

Written from the official code's facts and the reference repos' published structure, sharing no code with ``pcpeft``:
numpy FPS and kNN one cloud at a time, attention as an explicit softmax(q k^T * scale) v, the reference module
names (``encoder``, ``reduce_dim``, ``blocks.blocks.i``, ``cls_head_finetune``) so its state dict *is* a
reference fine-tune state dict.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def numpy_fps(cloud: np.ndarray, count: int) -> np.ndarray:
    """Textbook FPS on one float32 cloud (N,3): start at 0, then argmax of the min squared distance."""
    cloud = cloud.astype(np.float32)
    best = np.full(len(cloud), 1e10, dtype=np.float32)
    chosen = [0]
    for _ in range(count - 1):
        diff = cloud - cloud[chosen[-1]]
        dist = diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1] + diff[:, 2] * diff[:, 2]
        best = np.minimum(best, dist)
        chosen.append(int(np.argmax(best)))
    return np.asarray(chosen)


def numpy_group(points: torch.Tensor, num_group: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    neigh, centres = [], []
    for cloud in points.numpy().astype(np.float32):
        centre = cloud[numpy_fps(cloud, num_group)]
        diff = centre[:, None, :] - cloud[None, :, :]
        dist = diff[..., 0] ** 2 + diff[..., 1] ** 2 + diff[..., 2] ** 2
        nearest = np.argsort(dist, axis=1, kind="stable")[:, :group_size]
        neigh.append(cloud[nearest] - centre[:, None, :])
        centres.append(centre)
    return torch.from_numpy(np.stack(neigh)), torch.from_numpy(np.stack(centres))


class RefEncoder(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
                                         nn.Conv1d(512, channels, 1))

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        b, g, m, _ = groups.shape
        f = self.first_conv(groups.reshape(b * g, m, 3).transpose(2, 1))
        f = torch.cat([f.max(dim=2, keepdim=True)[0].expand(-1, -1, m), f], dim=1)
        return self.second_conv(f).max(dim=2)[0].reshape(b, g, self.channels)


class RefMlp(nn.Module):
    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(d, h), nn.GELU(), nn.Linear(h, d)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RefAttention(nn.Module):
    def __init__(self, d: int, heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (d // heads) ** -0.5
        self.qkv = nn.Linear(d, 3 * d, bias=qkv_bias)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class RefBlock(nn.Module):
    def __init__(self, d: int, heads: int, qkv_bias: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = RefAttention(d, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = RefMlp(d, 4 * d)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefEncoderStack(nn.Module):
    def __init__(self, d: int, depth: int, heads: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([RefBlock(d, heads) for _ in range(depth)])

    def forward(self, x, pos):
        for blk in self.blocks:
            x = blk(x + pos)
        return x


class RefPointTransformer(nn.Module):
    """The reference fine-tune model. ``bert=True`` gives Point-BERT (256-d encoder, reduce_dim, light head)."""

    def __init__(self, num_classes: int, num_group: int, group_size: int, bert: bool = False,
                 depth: int = 12, dim: int = 384, heads: int = 6) -> None:
        super().__init__()
        self.num_group, self.group_size, self.bert = num_group, group_size, bert
        enc = 256 if bert else dim
        self.encoder = RefEncoder(enc)
        if bert:
            self.reduce_dim = nn.Linear(enc, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.cls_pos = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.blocks = RefEncoderStack(dim, depth, heads)
        self.norm = nn.LayerNorm(dim)
        if bert:
            self.cls_head_finetune = nn.Sequential(nn.Linear(2 * dim, 256), nn.ReLU(), nn.Dropout(0.5),
                                                   nn.Linear(256, num_classes))
        else:
            self.cls_head_finetune = nn.Sequential(
                nn.Linear(2 * dim, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, num_classes))

    def forward(self, pts):
        neighborhood, center = numpy_group(pts, self.num_group, self.group_size)
        tokens = self.encoder(neighborhood)
        if self.bert:
            tokens = self.reduce_dim(tokens)
        b = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(b, -1, -1), self.pos_embed(center)], dim=1)
        x = self.norm(self.blocks(x, pos))
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1:].max(1)[0]], dim=-1))


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic non-trivial values (default inits hide wrong wiring)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif "norm" in name or name.endswith(".1.weight") or name.endswith(".5.weight"):
                tensor.copy_(1 + torch.randn(tensor.shape, generator=gen) * 0.1)
            else:
                fan_in = tensor.shape[1] if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / max(fan_in, 1) ** 0.5)
    return model
