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

#: kNN block size for skipping points: a block with no distance below the current k-th best is passed over.
_SKIP_BLOCK = 16
#: kNN rows: N points are read as a (_ROWS, N // _ROWS) matrix whose column minima bound the k-th distance.
_ROWS = 32


@njit(nogil=True, cache=True)
def _fps_cloud(x, y, z, num_samples, min_dist, spare, out_row) -> None:
    """One cloud: x, y, z (N,) float32 contiguous, min_dist (N,) float32 initialised, spare (N,) float32 scratch,
    out_row (num_samples,).

    Two loops per centre, both vectorised (checked in the assembly):
    - the distance update writes ``min(d, old)`` into the *other* buffer (double buffering). Updating in place,
      LLVM turns ``a[i] = d if d < a[i] else a[i]`` into a conditional store, vectorised as ``vmaskmovps``, which
      is microcoded on AMD Zen: that alone made the kernel run at scalar speed there (2.8 ns per point, now 0.5).
    - the argmax is an integer maximum over the keys ``(float bits << 32) | (N - i)``: the bits of a float >= 0
      order like the float, the one negative value (-1, an excluded point) sorts below them all, and a larger
      ``N - i`` is a lower index, so the largest key is the first maximum (torch.argmax's tie rule). LLVM does not
      vectorise a float max without fast-math; the integer one it does.
    """
    n = x.shape[0]
    bits_of = (min_dist.view(np.int32), spare.view(np.int32))
    source, target = min_dist, spare
    last = 0
    out_row[0] = 0
    for j in range(1, num_samples):
        cx, cy, cz = x[last], y[last], z[last]
        for i in range(n):
            dx = x[i] - cx
            dy = y[i] - cy
            dz = z[i] - cz
            d = dx * dx + dy * dy + dz * dz
            m = source[i]
            target[i] = d if d < m else m
        bits = bits_of[j % 2]
        best = (np.int64(bits[0]) << 32) | np.int64(n)
        for i in range(1, n):
            key = (np.int64(bits[i]) << 32) | np.int64(n - i)
            best = key if key > best else best
        last = n - (best & 0xFFFFFFFF)
        out_row[j] = last
        source, target = target, source


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
        _fps_cloud(x, y, z, num_samples, min_dist, np.empty(n, dtype=np.float32), out[b])


@njit(nogil=True, cache=True)
def _before(value, index, other_value, other_index) -> bool:
    """(value, index) sorts before (other_value, other_index): the nearer first, the lower index among ties."""
    return value < other_value or (value == other_value and index < other_index)


@njit(nogil=True, cache=True)
def _insert_sorted(value, index, start, best_d, best_i) -> None:
    """Insert (value, index) into the lists, ascending by (value, index), at or below position ``start``."""
    pos = start
    while pos > 0 and _before(value, index, best_d[pos - 1], best_i[pos - 1]):
        best_d[pos] = best_d[pos - 1]
        best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_d[pos] = value
    best_i[pos] = index


@njit(nogil=True, cache=True)
def _offer(value, index, filled, k, best_d, best_i) -> int:
    """Offer one candidate to the k best kept so far (``filled`` of them); returns the new count."""
    if filled < k:
        _insert_sorted(value, index, filled, best_d, best_i)
        return filled + 1
    if _before(value, index, best_d[k - 1], best_i[k - 1]):
        _insert_sorted(value, index, k - 1, best_d, best_i)
    return filled


@njit(nogil=True, cache=True)
def _kth_smallest(values, k, scratch) -> np.float32:
    """The k-th smallest of values (m >= k,), by insertion into scratch (k,). Values only, written out: going
    through :func:`_offer` per value made the whole kNN 1.5x slower (measured: 306 against 198 ms at 32 x 1200
    queries on 8192 points)."""
    for j in range(k):
        value = values[j]
        pos = j
        while pos > 0 and value < scratch[pos - 1]:
            scratch[pos] = scratch[pos - 1]
            pos -= 1
        scratch[pos] = value
    for j in range(k, values.shape[0]):
        value = values[j]
        if value < scratch[k - 1]:
            pos = k - 1
            while pos > 0 and value < scratch[pos - 1]:
                scratch[pos] = scratch[pos - 1]
                pos -= 1
            scratch[pos] = value
    return scratch[k - 1]


@njit(nogil=True, cache=True)
def _knn_query_3d(x, y, z, q0, q1, q2, k, dist, column_min, spare, out_row) -> None:
    """The k nearest of one query among N >= k * _ROWS points (x, y, z contiguous), into out_row (k,).

    The points are read as a (_ROWS, N // _ROWS) matrix. One vectorised pass computes every distance and the
    minimum of each column (double-buffered: an in-place running minimum compiles to masked stores). Each column
    minimum is the distance of a distinct point, so the k-th smallest of them bounds the k-th nearest distance;
    only the columns whose minimum is within the bound (and the tail past the matrix) are visited, and only their
    points within it are candidates, ranked by (distance, index) whatever order they are visited in.
    """
    n = x.shape[0]
    width = n // _ROWS
    for i in range(width):
        d0 = q0 - x[i]
        d1 = q1 - y[i]
        d2 = q2 - z[i]
        d = d0 * d0 + d1 * d1 + d2 * d2
        dist[i] = d
        column_min[i] = d
    current, other = column_min, spare
    for row in range(1, _ROWS):
        base = row * width
        for col in range(width):
            i = base + col
            d0 = q0 - x[i]
            d1 = q1 - y[i]
            d2 = q2 - z[i]
            d = d0 * d0 + d1 * d1 + d2 * d2
            dist[i] = d
            low = current[col]
            other[col] = d if d < low else low
        current, other = other, current
    for i in range(_ROWS * width, n):
        d0 = q0 - x[i]
        d1 = q1 - y[i]
        d2 = q2 - z[i]
        dist[i] = d0 * d0 + d1 * d1 + d2 * d2
    best_d = np.empty(k, dtype=np.float32)
    best_i = np.empty(k, dtype=np.int64)
    bound = _kth_smallest(current, k, best_d)
    filled = 0
    for col in range(width):
        if current[col] <= bound:
            for row in range(_ROWS):
                i = row * width + col
                if dist[i] <= bound:
                    filled = _offer(dist[i], i, filled, k, best_d, best_i)
    for i in range(_ROWS * width, n):
        if dist[i] <= bound:
            filled = _offer(dist[i], i, filled, k, best_d, best_i)
    if filled < k:  # only with NaN distances (no comparison holds): the sequential pass ranks them as before
        _k_smallest(dist, k, out_row)
        return
    for j in range(k):
        out_row[j] = best_i[j]


@njit(nogil=True, cache=True)
def _k_smallest(dist, k, out_row) -> None:
    """The indices of the k smallest of dist (N,) by (value, index), ascending, into out_row (k,)."""
    n = dist.shape[0]
    best_d = np.empty(k, dtype=np.float32)
    best_i = np.empty(k, dtype=np.int64)
    for i in range(k):  # the first k fill the list
        _insert_sorted(dist[i], i, i, best_d, best_i)
    i = k
    while i < n:
        if i % _SKIP_BLOCK == 0 and i + _SKIP_BLOCK <= n:  # pass over a block with nothing below the k-th best
            threshold = best_d[k - 1]
            below = False
            for lane in range(_SKIP_BLOCK):
                below |= dist[i + lane] < threshold
            if not below:
                i += _SKIP_BLOCK
                continue
        if dist[i] < best_d[k - 1]:  # a later one replaces the worst kept
            _insert_sorted(dist[i], i, k - 1, best_d, best_i)
        i += 1
    for j in range(k):
        out_row[j] = best_i[j]


@njit(parallel=True, cache=True, nogil=True)
def knn_kernel(points: np.ndarray, queries: np.ndarray, k: int, out: np.ndarray) -> None:
    """points (B, N, D), queries (B, G, D) float32, out (B, G, k) int64 in place: the k nearest by
    (squared distance, index), nearest first. Every query runs on per-coordinate copies of its cloud (vectorised
    distance loops); in 3D with N >= 32 k, through the column-minimum bound of :func:`_knn_query_3d`, else one
    sequential pass over all distances (:func:`_k_smallest`)."""
    batch, n, dims = points.shape
    groups = queries.shape[1]
    columns = np.empty((batch, dims, n), dtype=np.float32)  # (B, D, N): one contiguous row per coordinate
    for b in prange(batch):
        for i in range(n):
            for d in range(dims):
                columns[b, d, i] = points[b, i, d]
    for task in prange(batch * groups):
        b = task // groups
        g = task - b * groups
        dist = np.empty(n, dtype=np.float32)
        if dims == 3 and n // _ROWS >= k:
            width = n // _ROWS
            _knn_query_3d(columns[b, 0], columns[b, 1], columns[b, 2], queries[b, g, 0], queries[b, g, 1],
                          queries[b, g, 2], k, dist, np.empty(width, dtype=np.float32),
                          np.empty(width, dtype=np.float32), out[b, g])
        else:
            for i in range(n):
                diff = queries[b, g, 0] - columns[b, 0, i]
                dist[i] = diff * diff
            for d in range(1, dims):
                q = queries[b, g, d]
                for i in range(n):
                    diff = q - columns[b, d, i]
                    dist[i] += diff * diff
            _k_smallest(dist, k, out[b, g])
