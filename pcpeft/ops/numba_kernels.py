"""Compiled exact FPS and kNN (numba, parallel over clouds / queries). Imported lazily: numba is only needed when
one of the ``numba`` backends runs.

Both kernels reproduce the float32 arithmetic of the torch paths operation by operation (no ``fastmath``, so no
reassociation or fused multiply-add): FPS distances are ``(dx*dx + dy*dy) + dz*dz``, kNN distances are
``((q0-p0)^2 + (q1-p1)^2) + (q2-p2)^2``. Ties go to the lowest index in both.

Threads: the ``workqueue`` layer unless ``NUMBA_THREADING_LAYER`` says otherwise, because it is fork-safe (FPS also
runs in forked ``DataLoader`` workers, through the dataset transforms) where GNU OpenMP is not; it must not be
entered from two Python threads at once.
"""
from __future__ import annotations

import os

import numba
import numpy as np
from numba import njit, prange

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

_NEAR_ORIGIN_SQ = np.float32(1e-3)
_FAR = np.float32(1e10)


@njit(parallel=True, cache=True, nogil=True)
def fps_kernel(points: np.ndarray, num_samples: int, exclude_near_origin: bool, out: np.ndarray) -> None:
    """points (B, N, 3) float32, out (B, num_samples) int64 written in place; the semantics of ``fps_torch``."""
    batch, n = points.shape[0], points.shape[1]
    for b in prange(batch):
        x = np.ascontiguousarray(points[b, :, 0])
        y = np.ascontiguousarray(points[b, :, 1])
        z = np.ascontiguousarray(points[b, :, 2])
        # an excluded point keeps min_dist = -1 for good: min(-1, d) = -1 as d >= 0 (torch's where + minimum)
        min_dist = np.empty(n, dtype=np.float32)
        for i in range(n):
            min_dist[i] = _FAR
            if exclude_near_origin and not (x[i] * x[i] + y[i] * y[i] + z[i] * z[i] > _NEAR_ORIGIN_SQ):
                min_dist[i] = np.float32(-1.0)
        last = 0
        out[b, 0] = 0
        for j in range(1, num_samples):
            cx, cy, cz = x[last], y[last], z[last]
            best = np.float32(-np.inf)
            for i in range(n):  # branch-free, so it vectorises
                dx = x[i] - cx
                dy = y[i] - cy
                dz = z[i] - cz
                d = min(min_dist[i], dx * dx + dy * dy + dz * dz)
                min_dist[i] = d
                best = max(best, d)
            last = 0
            while min_dist[last] != best:  # first index of the maximum: ties to the lowest index
                last += 1
            out[b, j] = last


@njit(parallel=True, cache=True, nogil=True)
def knn_kernel(points: np.ndarray, queries: np.ndarray, k: int, out: np.ndarray) -> None:
    """points (B, N, D), queries (B, G, D) float32, out (B, G, k) int64 in place: the k nearest by
    (squared distance, index), nearest first."""
    batch, n, dims = points.shape
    groups = queries.shape[1]
    for task in prange(batch * groups):
        b = task // groups
        g = task - b * groups
        dist = np.empty(n, dtype=np.float32)
        for i in range(n):
            diff = queries[b, g, 0] - points[b, i, 0]
            acc = diff * diff
            for d in range(1, dims):
                diff = queries[b, g, d] - points[b, i, d]
                acc += diff * diff
            dist[i] = acc
        # sorted insertion into the k best (strict < keeps the earlier index first among equal distances)
        best_d = np.empty(k, dtype=np.float32)
        best_i = np.empty(k, dtype=np.int64)
        filled = 0
        for i in range(n):
            v = dist[i]
            if filled < k:  # the first k fill the list
                pos = filled
                filled += 1
            elif v < best_d[k - 1]:  # later ones replace the worst kept
                pos = k - 1
            else:
                continue
            while pos > 0 and v < best_d[pos - 1]:
                best_d[pos] = best_d[pos - 1]
                best_i[pos] = best_i[pos - 1]
                pos -= 1
            best_d[pos] = v
            best_i[pos] = i
        for i in range(k):
            out[b, g, i] = best_i[i]
