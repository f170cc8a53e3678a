"""GAPrompt's ShiftNet: a small PointNet++ that moves every input point and summarises the cloud's shape.

On a cloud P (B, N, 3), as the official ``models/GAPrompt.py`` (zhoujiahuan1991/ICML2025-GAPrompt):

* **encoding** E(P) = [P, sin(f P), cos(f P)] for f = 1, 2, 4, 8 (no pi): 27 channels;
* **SA1**: FPS ``num_group`` centres c1 of P, kNN ``group_size``; the neighbours' *absolute* encodings go through
  three (Conv2d 1x1, BatchNorm2d, ReLU) layers 27 -> 64 -> 32 -> 64 and a max over the neighbours: f1 (B, G, 64);
* **SA2**: the same on (c1, f1) with ``num_group // 2`` centres c2 and ``group_size // 2`` neighbours,
  64 -> 64 -> 32 -> 8: f2 (B, G/2, 8);
* **FP2 / FP1**: inverse-distance interpolation from the ``interpolation_neighbours`` (32) nearest coarse points
  (squared distances by the expansion |a|^2 + |b|^2 - 2 a.b, weights 1 / (d + 1e-4), normalised), concatenated
  after the fine features, then (Conv1d, BatchNorm1d, ReLU) layers: FP2 72 -> 64 -> 32 on c1, FP1 59 -> 32 -> 32
  on every point;
* **shift**: ``mlp_position`` (Linear 32 -> 64, ReLU, Dropout 0.2, Linear 64 -> 3) gives m, and the moved cloud
  is P + perturbation * m * P (the offset is proportional to the point's coordinates);
* **shape vector**: f2 flattened centre-major, (B, G/2 * 8).

The farthest point sampling follows the backbone's choice of backend and, by default, the CUDA kernel's
near-origin rule (see :mod:`pcpeft.ops.fps`). Module and parameter names are the official ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.fps import FpsBackend, farthest_point_sample
from ..ops.grouping import gather_points
from ..ops.knn import knn_indices

FREQUENCIES = (1.0, 2.0, 4.0, 8.0)
TOP_CENTRE_DIM = 8


def square_distance(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Squared distances by the official expansion -2 a.b + |a|^2 + |b|^2 (in that order), in float32 even under
    autocast. src (B, N, C), dst (B, M, C) -> (B, N, M); coincident points give rounding noise around 0, possibly
    negative (the official weights 1 / (d + eps) keep it)."""
    with torch.autocast(src.device.type, enabled=False):
        src, dst = src.float(), dst.float()
        dist = -2 * torch.matmul(src, dst.transpose(1, 2))
        dist = dist + src.square().sum(-1).unsqueeze(-1)
        return dist + dst.square().sum(-1).unsqueeze(1)


def nearest_weights(xyz1: torch.Tensor, xyz2: torch.Tensor, neighbours: int, eps: float
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse squared-distance weights of the ``neighbours`` nearest points of xyz2 for each point of xyz1.
    xyz1 (B, N, 3), xyz2 (B, S, 3) -> indices (B, N, k) and normalised weights (B, N, k), k = min(neighbours, S)."""
    dist, index = square_distance(xyz1, xyz2).sort(dim=-1)
    dist, index = dist[..., :neighbours], index[..., :neighbours]
    recip = 1.0 / (dist + eps)
    return index, recip / recip.sum(dim=2, keepdim=True)


def frequency_encoding(x: torch.Tensor) -> torch.Tensor:
    """[x, sin(x), cos(x), sin(2x), cos(2x), ..., cos(8x)]. (..., 3) -> (..., 27)."""
    parts = [x]
    for freq in FREQUENCIES:
        parts += [torch.sin(freq * x), torch.cos(freq * x)]
    return torch.cat(parts, dim=-1)


class SetAbstraction(nn.Module):
    """FPS + kNN grouping, a shared per-neighbour MLP and a max. xyz (B, N, 3), features (B, N, D) ->
    centres (B, G, 3), features (B, G, widths[-1])."""

    def __init__(self, num_group: int, group_size: int, in_channels: int, widths: tuple[int, ...],
                 fps_backend: FpsBackend = "auto", exclude_near_origin: bool = True) -> None:
        super().__init__()
        self.num_group, self.group_size = num_group, group_size
        self.fps_backend, self.exclude_near_origin = fps_backend, exclude_near_origin
        self.mlp_convs = nn.ModuleList()
        self.mlp_bns = nn.ModuleList()
        for c_in, c_out in zip((in_channels, *widths[:-1]), widths):
            self.mlp_convs.append(nn.Conv2d(c_in, c_out, 1))
            self.mlp_bns.append(nn.BatchNorm2d(c_out))

    def forward(self, xyz: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centres = gather_points(xyz, farthest_point_sample(xyz, self.num_group, self.fps_backend,
                                                           self.exclude_near_origin))
        grouped = gather_points(features, knn_indices(xyz, centres, self.group_size))  # (B, G, M, D)
        h = grouped.permute(0, 3, 2, 1)  # (B, D, M, G), the official layout
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            h = F.relu(bn(conv(h)))
        return centres, h.max(dim=2).values.transpose(1, 2)


class FeaturePropagation(nn.Module):
    """Interpolate coarse features onto fine points, concatenate after the fine features, per-point MLP.
    xyz1 (B, N, 3), xyz2 (B, S, 3), features1 (B, N, D1), features2 (B, S, D2) -> (B, N, widths[-1])."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], neighbours: int = 32) -> None:
        super().__init__()
        self.neighbours = neighbours
        self.mlp_convs = nn.ModuleList()
        self.mlp_bns = nn.ModuleList()
        for c_in, c_out in zip((in_channels, *widths[:-1]), widths):
            self.mlp_convs.append(nn.Conv1d(c_in, c_out, 1))
            self.mlp_bns.append(nn.BatchNorm1d(c_out))

    def forward(self, xyz1: torch.Tensor, xyz2: torch.Tensor, features1: torch.Tensor, features2: torch.Tensor
                ) -> torch.Tensor:
        if xyz2.shape[1] == 1:
            interpolated = features2.expand(-1, xyz1.shape[1], -1)
        else:
            index, weight = nearest_weights(xyz1, xyz2, self.neighbours, 1e-4)
            interpolated = (gather_points(features2, index) * weight.unsqueeze(-1)).sum(dim=2)
        h = torch.cat([features1, interpolated], dim=-1).transpose(1, 2)  # (B, D1 + D2, N)
        for conv, bn in zip(self.mlp_convs, self.mlp_bns):
            h = F.relu(bn(conv(h)))
        return h.transpose(1, 2)


class ShiftNet(nn.Module):
    """points (B, N, 3) -> (moved points (B, N, 3), shape vector (B, num_group // 2 * 8)); see the module
    docstring. ``num_group`` / ``group_size`` are the backbone's (the official code passes its own)."""

    def __init__(self, num_group: int, group_size: int, perturbation: float, interpolation_neighbours: int = 32,
                 fps_backend: FpsBackend = "auto", exclude_near_origin: bool = True) -> None:
        super().__init__()
        if num_group < 2 or group_size < 2:
            raise ValueError(f"ShiftNet needs at least 2 groups of 2 points, got {num_group} groups of {group_size}")
        self.perturbation = perturbation
        encoded = 3 * (2 * len(FREQUENCIES) + 1)
        grouping = {"fps_backend": fps_backend, "exclude_near_origin": exclude_near_origin}
        self.abstraction_level1 = SetAbstraction(num_group, group_size, encoded, (64, 32, 64), **grouping)
        self.abstraction_level2 = SetAbstraction(num_group // 2, group_size // 2, 64, (64, 32, TOP_CENTRE_DIM),
                                                 **grouping)
        self.propagation1 = FeaturePropagation(encoded + 32, (32, 32), interpolation_neighbours)
        self.propagation2 = FeaturePropagation(64 + TOP_CENTRE_DIM, (64, 32), interpolation_neighbours)
        self.mlp_position = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3))
        for layer in (self.mlp_position[0], self.mlp_position[3]):
            nn.init.kaiming_uniform_(layer.weight, a=5.0 ** 0.5)
            nn.init.zeros_(layer.bias)

    @property
    def shape_width(self) -> int:
        """Width of the shape vector: level-2 centres x 8."""
        return self.abstraction_level2.num_group * TOP_CENTRE_DIM

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = frequency_encoding(points)
        centres1, features1 = self.abstraction_level1(points, encoded)
        centres2, features2 = self.abstraction_level2(centres1, features1)
        features1 = self.propagation2(centres1, centres2, features1, features2)
        features = self.propagation1(points, centres1, encoded, features1)
        moved = self.mlp_position(features) * self.perturbation * points + points
        return moved, features2.reshape(points.shape[0], -1)
