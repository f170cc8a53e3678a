"""k-nearest-neighbour search by exact squared Euclidean distance."""
from __future__ import annotations

import torch

#: Upper bound on elements of the (B, chunk, N) distance block held at once (~64 MB of float32).
_MAX_BLOCK_ELEMENTS = 16 * 1024 * 1024


def knn_indices(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` points nearest to each query, nearest first.

    Distances are computed as ``sum((p - q)^2)`` (not the ``|p|^2 - 2pq + |q|^2`` expansion, whose rounding can
    swap near-equal neighbours), like the KNN_CUDA kernel the references use. A query that is itself one of the
    points is its own first neighbour.

    Args:
        points: (B, N, 3) cloud searched.
        queries: (B, G, 3) query positions (e.g. FPS centres).
        k: neighbours per query, 1 <= k <= N.
    Returns:
        (B, G, k) int64 indices into N.
    """
    if points.dim() != 3 or queries.dim() != 3 or points.shape[0] != queries.shape[0] or points.shape[-1] != queries.shape[-1]:
        raise ValueError(
            f"knn expects points (B, N, D) and queries (B, G, D); got {tuple(points.shape)} and {tuple(queries.shape)}"
        )
    if not 1 <= k <= points.shape[1]:
        raise ValueError(f"knn needs 1 <= k <= N; got k={k} for {points.shape[1]} points")
    pts = points.detach()
    qry = queries.detach()
    batch, n, _ = pts.shape
    chunk = max(1, _MAX_BLOCK_ELEMENTS // max(1, batch * n))
    out = []
    for start in range(0, qry.shape[1], chunk):
        block = qry[:, start : start + chunk]
        # accumulate per coordinate: bit-identical to sum((p - q)^2) in order, without a (B, c, N, D) temporary
        dist = (block[:, :, None, 0] - pts[:, None, :, 0]).square_()
        for dim in range(1, pts.shape[-1]):
            dist += (block[:, :, None, dim] - pts[:, None, :, dim]).square_()
        out.append(dist.topk(k, dim=-1, largest=False, sorted=True).indices)
    return torch.cat(out, dim=1)
