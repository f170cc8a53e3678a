"""Chamfer distances between predicted and target point sets (Point-MAE's and PointGPT's reconstruction losses)."""
from __future__ import annotations

import torch


def nearest_squared_distances(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pred (S, P, 3), target (S, Q, 3) -> (S, P) min squared distance of each pred point to the target set, and
    (S, Q) the same from each target point to the pred set."""
    dist = (pred[:, :, None, :] - target[:, None, :, :]).square().sum(-1)  # (S, P, Q)
    return dist.min(dim=2).values, dist.min(dim=1).values


def chamfer_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean over pred of the min squared distance + mean over target of it (``ChamferDistanceL2``). -> scalar."""
    d1, d2 = nearest_squared_distances(pred, target)
    return d1.mean() + d2.mean()


def chamfer_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(mean over pred of the min distance + mean over target of it) / 2 (``ChamferDistanceL1``). -> scalar."""
    d1, d2 = nearest_squared_distances(pred, target)
    return (d1.sqrt().mean() + d2.sqrt().mean()) / 2
