"""Point grouping: FPS centres + kNN neighbourhoods, relative to their centre (the Point-MAE ``Group``)."""
from __future__ import annotations

import torch
from torch import nn

from .fps import FpsBackend, farthest_point_sample
from .knn import knn_indices


def gather_points(points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Pick points by index per batch. points (B, N, C), index (B, *S) int -> (B, *S, C)."""
    batch = points.shape[0]
    flat = index.reshape(batch, -1)
    picked = torch.gather(points, 1, flat.unsqueeze(-1).expand(-1, -1, points.shape[-1]))
    return picked.reshape(*index.shape, points.shape[-1])


def group_points(
    points: torch.Tensor,
    num_group: int,
    group_size: int,
    fps_backend: FpsBackend = "auto",
    exclude_near_origin: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a cloud into ``num_group`` neighbourhoods of ``group_size`` points.

    Args:
        points: (B, N, 3) cloud (extra channels are not accepted: pass xyz only).
        num_group: G, centres chosen by farthest point sampling (first centre = point 0).
        group_size: M, nearest points of each centre (the centre itself included).
    Returns:
        neighbourhoods (B, G, M, 3) made relative to their centre, and centres (B, G, 3).
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"expected a point cloud of shape (B, N, 3), got {tuple(points.shape)}")
    if group_size > points.shape[1]:
        raise ValueError(f"group_size {group_size} exceeds the {points.shape[1]} points of the cloud")
    centre_idx = farthest_point_sample(points, num_group, fps_backend, exclude_near_origin)
    centres = gather_points(points, centre_idx)
    neighbour_idx = knn_indices(points, centres, group_size)
    neighbourhoods = gather_points(points, neighbour_idx) - centres.unsqueeze(2)
    return neighbourhoods, centres


class PointGrouper(nn.Module):
    """Module form of :func:`group_points` (no parameters); the backbones hold one as ``group_divider``."""

    def __init__(self, num_group: int, group_size: int, fps_backend: FpsBackend = "auto",
                 exclude_near_origin: bool = False) -> None:
        super().__init__()
        self.num_group = num_group
        self.group_size = group_size
        self.fps_backend = fps_backend
        self.exclude_near_origin = exclude_near_origin

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, 3) -> neighbourhoods (B, G, M, 3), centres (B, G, 3)."""
        return group_points(points, self.num_group, self.group_size, self.fps_backend, self.exclude_near_origin)

    def extra_repr(self) -> str:
        return (f"num_group={self.num_group}, group_size={self.group_size}, fps_backend={self.fps_backend!r}, "
                f"exclude_near_origin={self.exclude_near_origin}")
