"""k-nearest-neighbour search by exact squared Euclidean distance, on two interchangeable backends.

Semantics: distances are ``sum((p - q)^2)`` accumulated coordinate by coordinate in float32 (not the
``|p|^2 - 2pq + |q|^2`` expansion, whose rounding can swap near-equal neighbours), like the KNN_CUDA kernel the
references use; neighbours are ordered by (distance, index), so equal distances go to the lower index. A query that
is itself one of the points is its own first neighbour (unless an identical point has a lower index).

Backends:
    ``torch``  chunked distance blocks (bounded memory, <= 64 MB each) and ``topk``; the rows where ``topk`` meets
               a tie (its order among equal values is unspecified) are redone with a stable sort.
    ``numba``  a compiled kernel parallel over queries (CPU): one pass over the points per query with a sorted
               insertion into the k best; memory O(N) per thread.
``auto`` picks the faster, measured once per process, device and shape (see ``fps.measured_fastest``).
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from .fps import _has_module, measured_fastest

KnnBackend = Literal["auto", "torch", "numba"]

#: Upper bound on elements of the (B, chunk, N) distance block held at once (~64 MB of float32).
_MAX_BLOCK_ELEMENTS = 16 * 1024 * 1024

#: (device type, B, N, G, k) -> the backend measured fastest there, for this process.
_MEASURED: dict[tuple, str] = {}


def available_knn_backends(device: torch.device | str = "cpu") -> list[str]:
    """Names of the kNN backends usable for tensors on ``device``."""
    return ["torch", "numba"] if torch.device(device).type == "cpu" and _has_module("numba") else ["torch"]


def _check(points: torch.Tensor, queries: torch.Tensor, k: int) -> None:
    if (points.dim() != 3 or queries.dim() != 3 or points.shape[0] != queries.shape[0]
            or points.shape[-1] != queries.shape[-1]):
        raise ValueError(
            f"knn expects points (B, N, D) and queries (B, G, D); got {tuple(points.shape)} and {tuple(queries.shape)}"
        )
    if not 1 <= k <= points.shape[1]:
        raise ValueError(f"knn needs 1 <= k <= N; got k={k} for {points.shape[1]} points")


def knn_torch(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Chunked exact kNN in torch. points (B, N, D), queries (B, G, D) -> (B, G, k) int64."""
    _check(points, queries, k)
    pts = points.detach()
    qry = queries.detach()
    batch, n, _ = pts.shape
    chunk = max(1, _MAX_BLOCK_ELEMENTS // max(1, batch * n))
    extra = min(k + 1, n)  # one more than k shows a tie at the k-th place
    out = []
    for start in range(0, qry.shape[1], chunk):
        block = qry[:, start : start + chunk]
        # accumulate per coordinate: bit-identical to sum((p - q)^2) in order, without a (B, c, N, D) temporary
        dist = (block[:, :, None, 0] - pts[:, None, :, 0]).square_()
        for dim in range(1, pts.shape[-1]):
            dist += (block[:, :, None, dim] - pts[:, None, :, dim]).square_()
        values, index = dist.topk(extra, dim=-1, largest=False, sorted=True)
        index = index[..., :k]
        tied = (values[..., 1:] == values[..., :-1]).any(-1)  # (B, c)
        if bool(tied.any()):
            index = index.clone()
            index[tied] = dist[tied].sort(dim=-1, stable=True).indices[:, :k]
        out.append(index)
    return torch.cat(out, dim=1)


def knn_numba(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Exact kNN through the compiled kernel. points (B, N, D), queries (B, G, D) -> (B, G, k) int64."""
    from .numba_kernels import knn_kernel

    _check(points, queries, k)
    pts = np.ascontiguousarray(points.detach().float().cpu().numpy())
    qry = np.ascontiguousarray(queries.detach().float().cpu().numpy())
    out = np.empty((qry.shape[0], qry.shape[1], k), dtype=np.int64)
    knn_kernel(pts, qry, k, out)
    return torch.from_numpy(out).to(points.device)


_BACKENDS = {"torch": knn_torch, "numba": knn_numba}


def knn_indices(points: torch.Tensor, queries: torch.Tensor, k: int, backend: KnnBackend = "auto") -> torch.Tensor:
    """Indices of the ``k`` points nearest to each query, ordered by (distance, index).

    Args:
        points: (B, N, D) cloud searched.
        queries: (B, G, D) query positions (e.g. FPS centres).
        k: neighbours per query, 1 <= k <= N.
        backend: ``auto`` | ``torch`` | ``numba``; every backend returns identical indices.
    Returns:
        (B, G, k) int64 indices into N.
    """
    _check(points, queries, k)
    available = available_knn_backends(points.device)
    if backend != "auto":
        if backend not in _BACKENDS:
            raise ValueError(f"unknown kNN backend {backend!r}; choose one of {['auto', *_BACKENDS]}")
        if backend not in available:
            raise RuntimeError(f"kNN backend {backend!r} is not available for device {points.device} "
                               f"(available: {available})")
        return _BACKENDS[backend](points, queries, k)
    if len(available) == 1 or points.dtype != torch.float32 or queries.dtype != torch.float32:
        return knn_torch(points, queries, k)  # the kernel computes in float32 only
    calls = {n: (lambda n=n: _BACKENDS[n](points, queries, k)) for n in available}
    key = (points.device.type, *points.shape, queries.shape[1], k)
    name, result = measured_fastest(calls, _MEASURED, key)
    return result if result is not None else _BACKENDS[name](points, queries, k)
