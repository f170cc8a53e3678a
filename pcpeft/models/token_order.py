"""Orderings of the group tokens: PointGPT's greedy nearest-neighbour chain of the centres."""
from __future__ import annotations

import torch

from ..ops.grouping import PointGrouper


def nearest_neighbour_chain(centres: torch.Tensor) -> torch.Tensor:
    """Greedy chain through the centres. (B, G, 3) -> order (B, G) int64, a permutation per cloud.

    Starts at centre 0, then repeatedly moves to the nearest unvisited centre (Euclidean ``torch.cdist``, argmin,
    ties to the lowest index), as PointGPT's ``simplied_morton_sorting``.
    """
    batch, groups, _ = centres.shape
    dist = torch.cdist(centres, centres)
    visited = torch.zeros(batch, groups, dtype=torch.bool, device=centres.device)
    rows = torch.arange(batch, device=centres.device)
    current = torch.zeros(batch, dtype=torch.long, device=centres.device)
    order = [current]
    visited[rows, current] = True
    for _ in range(groups - 1):
        candidates = dist[rows, current].masked_fill(visited, float("inf"))
        current = candidates.argmin(dim=-1)
        visited[rows, current] = True
        order.append(current)
    return torch.stack(order, dim=1)


def reorder_groups(neighbourhoods: torch.Tensor, centres: torch.Tensor, order: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``order`` (B, G) to neighbourhoods (B, G, M, 3) and centres (B, G, 3)."""
    rows = torch.arange(order.shape[0], device=order.device).unsqueeze(1)
    return neighbourhoods[rows, order], centres[rows, order]


class ChainOrderedGrouper(PointGrouper):
    """:class:`PointGrouper` whose groups come out in nearest-neighbour chain order (PointGPT's ``Group``), so
    anything reading the grouper's output (e.g. a forward hook) sees the centres in token order.
    (B, N, 3) -> neighbourhoods (B, G, M, 3), centres (B, G, 3)."""

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        neighbourhoods, centres = super().forward(points)
        return reorder_groups(neighbourhoods, centres, nearest_neighbour_chain(centres))
