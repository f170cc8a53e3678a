"""Independent restatement of the official GAPrompt forward (zhoujiahuan1991/ICML2025-GAPrompt,
``models/prompt_MAE.py`` ``PointTransformer_pointtokenprompt`` + ``models/GAPrompt.py``), for tests.

Written from the reference facts and checked against the official code; it shares no code with ``pcpeft.peft``
(FPS and kNN come from :mod:`pcpeft.ops`: the CUDA kernels' semantics, near-origin rule on). Module names are the
official ones, so ``state_dict()`` is an official fine-tuned state dict (446 keys at the official size). Sizes are
parameters: width, depth, groups (the second level is ``num_group // 2`` of ``group_size // 2``), prompt points,
perturbation, propagation side (``"after"`` = ``permutation_after_attention``, ``"before"`` =
``permutation_before_attention``), prompt depth and the feature-propagation neighbours of ShiftNet (official 32).
The flat-index quirk of the propagation is kept; ``corrected=True`` gathers from the patch rows instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pcpeft.ops.fps import fps_torch
from pcpeft.ops.knn import knn_torch


def fps(xyz: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """pointnet2_ops furthest_point_sample + gather_operation: (B, N, 3) -> centres (B, count, 3), indices."""
    idx = fps_torch(xyz, count, exclude_near_origin=True)
    rows = torch.arange(xyz.shape[0]).unsqueeze(1)
    return xyz[rows, idx], idx


def group(xyz: torch.Tensor, count: int, size: int):
    """The official ``Group`` with ``require_index``: neighbourhood (B, G, M, 3), centre (B, G, 3), flat neighbour
    indices (B*G*M,) and flat centre indices (B*G,), both offset by b * N."""
    b, n, _ = xyz.shape
    centre, centre_idx = fps(xyz, count)
    idx = knn_torch(xyz, centre, size) + torch.arange(b).view(-1, 1, 1) * n
    idx = idx.view(-1)
    centre_idx = (centre_idx + torch.arange(b).view(-1, 1) * n).view(-1)
    neighbourhood = xyz.reshape(b * n, -1)[idx].view(b, count, size, 3) - centre.unsqueeze(2)
    return neighbourhood, centre, idx, centre_idx


def square_distance(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    b, n, _ = src.shape
    m = dst.shape[1]
    dist = -2 * torch.matmul(src, dst.permute(0, 2, 1))
    dist += torch.sum(src ** 2, -1).view(b, n, 1)
    dist += torch.sum(dst ** 2, -1).view(b, 1, m)
    return dist


def index_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    b = points.shape[0]
    batch = torch.arange(b).view(b, *([1] * (idx.dim() - 1))).expand_as(idx)
    return points[batch, idx, :]


def interpolate(xyz1, xyz2, values, neighbours: int, eps: float) -> torch.Tensor:
    """Inverse squared-distance interpolation of ``values`` (B, S, C) at xyz1 from the nearest xyz2."""
    b, n, _ = xyz1.shape
    dists, idx = square_distance(xyz1, xyz2).sort(dim=-1)
    dists, idx = dists[:, :, :neighbours], idx[:, :, :neighbours]
    recip = 1.0 / (dists + eps)
    weight = recip / torch.sum(recip, dim=2, keepdim=True)
    return torch.sum(index_points(values, idx) * weight.view(b, n, -1, 1), dim=2)


# -- ShiftNet --------------------------------------------------------------------------------------------------
class SetAbstraction(nn.Module):
    def __init__(self, count: int, size: int, channels: int, widths) -> None:
        super().__init__()
        self.count, self.size = count, size
        self.mlp_convs, self.mlp_bns = nn.ModuleList(), nn.ModuleList()
        for out in widths:
            self.mlp_convs.append(nn.Conv2d(channels, out, 1))
            self.mlp_bns.append(nn.BatchNorm2d(out))
            channels = out

    def forward(self, xyz, points):
        b, n, _ = xyz.shape
        _, centre, idx, _ = group(xyz, self.count, self.size)
        new = points.reshape(b * n, -1)[idx].reshape(b, self.count, self.size, -1).permute(0, 3, 2, 1)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            new = F.relu(bn(conv(new)))
        return centre, torch.max(new, 2)[0].permute(0, 2, 1)


class FeaturePropagation(nn.Module):
    def __init__(self, channels: int, widths, neighbours: int) -> None:
        super().__init__()
        self.neighbours = neighbours
        self.mlp_convs, self.mlp_bns = nn.ModuleList(), nn.ModuleList()
        for out in widths:
            self.mlp_convs.append(nn.Conv1d(channels, out, 1))
            self.mlp_bns.append(nn.BatchNorm1d(out))
            channels = out

    def forward(self, xyz1, xyz2, points1, points2):
        new = torch.cat([points1, interpolate(xyz1, xyz2, points2, self.neighbours, 1e-4)], dim=-1).permute(0, 2, 1)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            new = F.relu(bn(conv(new)))
        return new.permute(0, 2, 1)


class ShiftNet(nn.Module):
    def __init__(self, count: int, size: int, perturbation: float, neighbours: int) -> None:
        super().__init__()
        self.perturbation = perturbation
        self.abstraction_level1 = SetAbstraction(count, size, 27, [64, 32, 64])
        self.abstraction_level2 = SetAbstraction(count // 2, size // 2, 64, [64, 32, 8])
        self.propagation1 = FeaturePropagation(27 + 32, [32, 32], neighbours)
        self.propagation2 = FeaturePropagation(64 + 8, [64, 32], neighbours)
        self.mlp_position = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3))

    @staticmethod
    def embed(x):
        out = [x]
        for freq in 2 ** torch.linspace(0, 3, 4):
            out += [torch.sin(freq * x), torch.cos(freq * x)]
        return torch.cat(out, -1)

    def forward(self, x):
        feature = self.embed(x)
        c1, f1 = self.abstraction_level1(x, feature)
        c2, f2 = self.abstraction_level2(c1, f1)
        f1 = self.propagation2(c1, c2, f1, f2)
        feature = self.propagation1(x, c1, feature, f1)
        y = self.mlp_position(feature) * self.perturbation * x
        return y + x, f2.reshape(x.shape[0], -1)


# -- transformer -----------------------------------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((qkv[0] @ qkv[1].transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ qkv[2]).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Adapter(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(dim)
        self.scale = nn.Linear(dim, 1)
        self.ln1 = nn.Linear(dim, 16)
        self.ln2 = nn.Linear(16, dim)

    def forward(self, x):
        out = self.ln1(self.layer_norm(x))
        return self.ln2(out * torch.sigmoid(1.702 * out)) * 0.7


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, owner: "GAPromptReference") -> None:
        super().__init__()
        self.dim = dim
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn, self.mlp = Attention(dim, heads), Mlp(dim)
        self.prompt_embeddings = nn.Parameter(torch.zeros(10, dim))
        self.scaler1 = nn.Parameter(torch.ones(1) * 0.5)
        self.scaler2 = nn.Parameter(torch.ones(1) * 0.5)
        self.adapter = Adapter(dim)
        self.out_transform = nn.Sequential(nn.BatchNorm1d(dim), nn.GELU())
        object.__setattr__(self, "owner", owner)

    def propagate(self, x, geo):
        """x (B, 1 + R, C) -> the official permutation step (in place on the rows after cls)."""
        level1_center, level1_index, level2_center, level2_index = geo
        b, g, _ = x.shape
        cls_x, x = x[:, 0:1], x[:, 1:].clone()
        g = g - 1
        rng = level1_center.shape[1]
        source = x[:, -rng:].reshape(b * rng, -1) if self.owner.corrected else x.reshape(b * g, -1)
        count = level2_center.shape[1]
        neighbourhoods = source[level1_index, :].reshape(b * count, -1, self.dim)
        centres = source[level2_index, :].reshape(b, count, self.dim)
        neighbourhoods = neighbourhoods + neighbourhoods  # DropPath(n) + n in eval
        pooled = neighbourhoods.reshape(b, count, -1, self.dim).max(dim=2)[0]
        vis = self.out_transform(pooled.permute(0, 2, 1)).permute(0, 2, 1) + 0.3 * centres
        x[:, -rng:] = x[:, -rng:] + 0.3 * interpolate(level1_center, level2_center, vis, 64, 1e-8)
        return torch.cat([cls_x, x], dim=1)

    def forward(self, x, layer_id, shape, token_pos, geo):
        cfg = self.owner
        if layer_id < cfg.prompt_depth:
            prompt = self.prompt_embeddings.repeat(x.shape[0], 1, 1)
            prompt = prompt + 0.5 * shape.repeat([1, 10, 1]) + token_pos.repeat(x.shape[0], 1, 1)
            x = torch.cat((x[:, 0:1], prompt, x[:, 1:]), 1)
        if cfg.side == "before":
            x = self.propagate(x, geo)
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        if cfg.side == "after":
            x = self.propagate(x, geo)
        cls_x, x = x[:, 0:1], x[:, 1:]
        if layer_id < cfg.prompt_depth and layer_id < 6:
            x = x + self.adapter(x + shape * 0.5)
        else:
            x = x + self.adapter(x)
        if layer_id < cfg.prompt_depth:
            x = x[:, 10:]
        return torch.cat([cls_x, x], dim=1)


class Encoder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.first_conv = nn.Sequential(nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, 256, 1))
        self.second_conv = nn.Sequential(nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(),
                                         nn.Conv1d(512, dim, 1))

    def forward(self, groups):
        b, g, m, _ = groups.shape
        f = self.first_conv(groups.reshape(b * g, m, 3).transpose(2, 1))
        f = torch.cat([torch.max(f, dim=2, keepdim=True)[0].expand(-1, -1, m), f], dim=1)
        return torch.max(self.second_conv(f), dim=2)[0].reshape(b, g, self.dim)


class GAPromptReference(nn.Module):
    """The official model in eval mode: pts (B, N, 3) -> logits (B, classes)."""

    def __init__(self, classes: int, num_group: int, group_size: int, dim: int = 384, depth: int = 12,
                 heads: int = 6, prompt_points: int = 5, perturbation: float = 0.8, side: str = "after",
                 prompt_depth: int = 6, neighbours: int = 32, corrected: bool = False) -> None:
        super().__init__()
        self.num_group, self.group_size = num_group, group_size
        self.side, self.prompt_depth, self.corrected = side, prompt_depth, corrected
        self.encoder = Encoder(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, dim))
        self.prompt_cor = nn.Parameter(torch.zeros(10, 3))
        self.blocks = nn.Module()
        self.blocks.blocks = nn.ModuleList(Block(dim, heads, self) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.cls_head_finetune = nn.Sequential(
            nn.Linear(3 * dim, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.6),
            nn.Linear(256, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.6), nn.Linear(256, classes))
        self.point_prompt = nn.Module()
        self.point_prompt.points = nn.Parameter(torch.zeros(1, prompt_points, 3))
        self.shift_net = ShiftNet(num_group, group_size, perturbation, neighbours)
        self.shape_feature_mlp = nn.Sequential(nn.Linear(num_group // 2 * 8, 16), nn.GELU(), nn.Dropout(0.25),
                                               nn.Linear(16, dim))

    def forward(self, pts):
        pts, shape = self.shift_net(pts)
        shape = self.shape_feature_mlp(shape)[:, None, :]
        pts = torch.cat([pts, self.point_prompt.points.repeat(pts.shape[0], 1, 1) * 5], dim=1)
        neighbourhood, center, _, _ = group(pts, self.num_group, self.group_size)
        tokens = self.encoder(neighbourhood)
        _, level2_center, level1_idx, level2_idx = group(center, self.num_group // 2, self.group_size // 2)
        geo = (center, level1_idx, level2_center, level2_idx)
        b = tokens.shape[0]
        x = torch.cat((self.cls_token.expand(b, -1, -1), tokens), dim=1)
        pos = torch.cat((self.cls_pos.expand(b, -1, -1), self.pos_embed(center)), dim=1)
        token_pos = self.pos_embed(self.prompt_cor)
        for i, block in enumerate(self.blocks.blocks):
            x = block(x + pos, i, shape, token_pos, geo)
        x = self.norm(x)
        return self.cls_head_finetune(torch.cat([x[:, 0], x[:, 1:].max(1)[0], shape[:, 0]], dim=-1))
