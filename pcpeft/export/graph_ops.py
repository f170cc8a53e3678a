"""FPS and kNN written as plain tensor operations, so that the grouping becomes part of an exported graph (ONNX).

Same semantics and the same float32 arithmetic as :mod:`pcpeft.ops` (first centre index 0, squared distances as
``dx*dx + dy*dy + dz*dz``, ties to the lowest index; kNN by ``sum((p - q)^2)`` per coordinate, nearest first), so
the exported model picks the same centres and neighbours as the PyTorch one. The FPS loop is unrolled over the
``num_group`` centres (a fixed count), each step a gather, a distance, a minimum and an argmax.
"""
from __future__ import annotations

import torch
from torch import nn

from ..ops.fps import NEAR_ORIGIN_SQ
from ..ops.grouping import PointGrouper, gather_points


def fps_graph(points: torch.Tensor, num_samples: int, exclude_near_origin: bool = False) -> torch.Tensor:
    """points (B, N, 3) float32 -> (B, num_samples) int64 FPS indices (as ``pcpeft.ops.fps_torch``)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    min_dist = torch.full_like(x, 1e10)
    if exclude_near_origin:
        far_enough = (x * x + y * y + z * z) > NEAR_ORIGIN_SQ
        min_dist = torch.where(far_enough, min_dist, torch.full_like(min_dist, -1.0))
    last = torch.zeros_like(x[:, 0], dtype=torch.long)
    picks = [last]
    for _ in range(1, num_samples):
        centre = torch.gather(points, 1, last.view(-1, 1, 1).expand(-1, 1, 3))  # (B, 1, 3)
        dx, dy, dz = x - centre[..., 0], y - centre[..., 1], z - centre[..., 2]
        dist = dx * dx + dy * dy + dz * dz
        if exclude_near_origin:
            dist = torch.where(far_enough, dist, min_dist)
        min_dist = torch.minimum(min_dist, dist)
        last = torch.argmax(min_dist, dim=1)
        picks.append(last)
    return torch.stack(picks, dim=1)


def knn_graph(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """points (B, N, 3), queries (B, G, 3) -> (B, G, k) int64 indices of the nearest points, nearest first."""
    dist = (queries[:, :, None, 0] - points[:, None, :, 0]) ** 2
    dist = dist + (queries[:, :, None, 1] - points[:, None, :, 1]) ** 2
    dist = dist + (queries[:, :, None, 2] - points[:, None, :, 2]) ** 2
    return torch.topk(dist, k, dim=-1, largest=False, sorted=True).indices


class GraphGrouper(nn.Module):
    """:class:`pcpeft.ops.PointGrouper` in graph operations. (B, N, 3) -> neighbourhoods (B, G, M, 3) relative to
    their centres, centres (B, G, 3)."""

    def __init__(self, num_group: int, group_size: int, exclude_near_origin: bool = False) -> None:
        super().__init__()
        self.num_group, self.group_size, self.exclude_near_origin = num_group, group_size, exclude_near_origin

    @classmethod
    def like(cls, grouper: PointGrouper) -> "GraphGrouper":
        return cls(grouper.num_group, grouper.group_size, grouper.exclude_near_origin)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centres = gather_points(points, fps_graph(points, self.num_group, self.exclude_near_origin))
        neighbours = gather_points(points, knn_graph(points, centres, self.group_size))
        return neighbours - centres.unsqueeze(2), centres
