"""Farthest point sampling (FPS) with the reference semantics, on three interchangeable backends.

Semantics: the first centre is point index 0; every further centre is the point with the largest
squared Euclidean distance to the set chosen so far, distances computed in float32 as ``dx*dx + dy*dy + dz*dz``.
Ties go to the lowest index (what ``torch.argmax`` does); once every distinct point has been chosen (a cloud with
fewer distinct points than centres) all remaining distances are 0 and index 0 is repeated.

``exclude_near_origin=True`` reproduces a quirk of the CUDA kernel in ``pointnet2_ops`` (used to train the official
Point-MAE / Point-BERT checkpoints): points with ``|p|^2 <= 1e-3`` are never chosen after the first centre.
It is off by default (the plain semantics above); on normalised clouds it changes the centres only when a point
lies within 0.0316 of the origin.

Backends:
    ``torch``      batched loop over the centres; runs everywhere, the baseline.
    ``fpsample``   the exact ``fpsample.fps_sampling`` (CPU, Rust); ~3x faster than the loop per cloud.
                   Its bucket/kd-tree variants are NOT exact (checked: they share only ~40 of 128 centres with
                   the reference and do not start at index 0), so they are never used.
    ``numba``      a compiled exact kernel (:mod:`.numba_kernels`), parallel over clouds (CPU). Compiled once and
                   cached on disk beside the module (first call of a fresh install: ~10 s).
    ``pointnet2``  ``pointnet2_ops.pointnet2_utils.furthest_point_sample`` on CUDA when importable (optional).

``auto`` times every available backend once per process, device and shape (B, N, G) on the first call's input
and then keeps the fastest (:func:`measured_fastest`); every backend returns identical indices, so the choice
changes the time only.
"""
from __future__ import annotations

import importlib.util
import time
from typing import Callable, Literal

import numpy as np
import torch

FpsBackend = Literal["auto", "torch", "fpsample", "numba", "pointnet2"]

#: Squared-norm threshold of the pointnet2_ops kernel's candidate filter.
NEAR_ORIGIN_SQ = 1e-3


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def available_fps_backends(device: torch.device | str = "cpu") -> list[str]:
    """Names of the FPS backends usable for tensors on ``device`` (``torch`` is always there)."""
    device = torch.device(device)
    names = ["torch"]
    if device.type == "cpu" and _has_module("fpsample"):
        names.append("fpsample")
    if device.type == "cpu" and _has_module("numba"):
        names.append("numba")
    if device.type == "cuda" and _has_module("pointnet2_ops"):
        names.append("pointnet2")
    return names


def _check_points(points: torch.Tensor, num_samples: int) -> None:
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"fps expects points of shape (B, N, 3), got {tuple(points.shape)}")
    if not 1 <= num_samples:
        raise ValueError(f"fps needs num_samples >= 1, got {num_samples}")
    if points.shape[1] < num_samples:
        raise ValueError(
            f"fps cannot pick {num_samples} centres from a cloud of {points.shape[1]} points "
            f"(points shape {tuple(points.shape)})"
        )


def fps_torch(points: torch.Tensor, num_samples: int, exclude_near_origin: bool = False) -> torch.Tensor:
    """Batched reference FPS in plain torch. points (B, N, 3) -> indices (B, num_samples) int64."""
    _check_points(points, num_samples)
    pts = points.detach().float()
    batch, n, _ = pts.shape
    x, y, z = pts.unbind(-1)  # each (B, N)
    min_dist = torch.full((batch, n), 1e10, dtype=torch.float32, device=pts.device)
    if exclude_near_origin:
        far_enough = (x * x + y * y + z * z) > NEAR_ORIGIN_SQ
        min_dist = torch.where(far_enough, min_dist, torch.full_like(min_dist, -1.0))
    idx = torch.zeros(batch, num_samples, dtype=torch.long, device=pts.device)
    rows = torch.arange(batch, device=pts.device)
    last = torch.zeros(batch, dtype=torch.long, device=pts.device)
    for j in range(1, num_samples):
        cx, cy, cz = x[rows, last, None], y[rows, last, None], z[rows, last, None]
        dx, dy, dz = x - cx, y - cy, z - cz
        dist = dx * dx + dy * dy + dz * dz
        if exclude_near_origin:
            dist = torch.where(far_enough, dist, min_dist)
        min_dist = torch.minimum(min_dist, dist)
        last = torch.argmax(min_dist, dim=1)
        idx[:, j] = last
    return idx


def _has_duplicate_rows(cloud: np.ndarray) -> bool:
    """Whether two rows of an (N, 3) float32 array may be identical (a 64-bit row hash; collisions only cost time)."""
    bits = np.ascontiguousarray(cloud, dtype=np.float32).view(np.uint32).astype(np.uint64)
    keys = bits[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ bits[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F) ^ bits[:, 2]
    return np.unique(keys).size < keys.size


def _canonical_ties(cloud: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Map fpsample's picks onto the reference tie rule (lowest index among identical points; index 0 once
    every distinct point is taken). Only duplicate points create such ties."""
    if not _has_duplicate_rows(cloud):
        return chosen
    same = (cloud[None, :, :] == cloud[chosen][:, None, :]).all(-1)  # (m, N)
    canonical = same.argmax(axis=1)
    seen: set[int] = set()
    for pos, value in enumerate(canonical.tolist()):
        if value in seen:  # every distinct point already chosen: the reference repeats index 0 from here on
            canonical[pos:] = 0
            break
        seen.add(value)
    return canonical


def fps_fpsample(points: torch.Tensor, num_samples: int, exclude_near_origin: bool = False) -> torch.Tensor:
    """FPS through ``fpsample.fps_sampling`` (exact), one cloud at a time. (B, N, 3) -> (B, num_samples) int64."""
    import fpsample

    _check_points(points, num_samples)
    clouds = points.detach().float().cpu().numpy()
    out = np.empty((clouds.shape[0], num_samples), dtype=np.int64)
    for b, cloud in enumerate(clouds):
        if exclude_near_origin:
            keep = np.flatnonzero((cloud * cloud).sum(-1, dtype=np.float32) > NEAR_ORIGIN_SQ)
            keep = np.concatenate([[0], keep[keep != 0]])
            if len(keep) < num_samples:  # the kernel's degenerate case: leave it to the reference loop
                out[b] = fps_torch(points[b : b + 1].cpu(), num_samples, True)[0].numpy()
                continue
            sub = np.ascontiguousarray(cloud[keep])
            picked = keep[_canonical_ties(sub, fpsample.fps_sampling(sub, num_samples, start_idx=0).astype(np.int64))]
        else:
            picked = _canonical_ties(cloud, fpsample.fps_sampling(cloud, num_samples, start_idx=0).astype(np.int64))
        out[b] = picked
    return torch.from_numpy(out).to(points.device)


def fps_numba(points: torch.Tensor, num_samples: int, exclude_near_origin: bool = False) -> torch.Tensor:
    """FPS through the compiled kernel, parallel over clouds. (B, N, 3) -> (B, num_samples) int64."""
    from .numba_kernels import fps_kernel

    _check_points(points, num_samples)
    clouds = np.ascontiguousarray(points.detach().float().cpu().numpy())
    out = np.empty((clouds.shape[0], num_samples), dtype=np.int64)
    fps_kernel(clouds, num_samples, bool(exclude_near_origin), out)
    return torch.from_numpy(out).to(points.device)


def fps_pointnet2(points: torch.Tensor, num_samples: int, exclude_near_origin: bool = False) -> torch.Tensor:
    """FPS through the optional ``pointnet2_ops`` CUDA kernel.

    The kernel always skips near-origin points; when ``exclude_near_origin`` is False and a cloud has such a
    point (other than point 0), that batch falls back to :func:`fps_torch` so every backend agrees.
    """
    from pointnet2_ops import pointnet2_utils

    _check_points(points, num_samples)
    pts = points.detach().float().contiguous()
    if not exclude_near_origin and bool((pts[:, 1:].square().sum(-1) <= NEAR_ORIGIN_SQ).any()):
        return fps_torch(pts, num_samples, False)
    return pointnet2_utils.furthest_point_sample(pts, num_samples).long()


_BACKENDS = {"torch": fps_torch, "fpsample": fps_fpsample, "numba": fps_numba, "pointnet2": fps_pointnet2}

#: (device type, B, N, G) -> the backend measured fastest there, for this process.
_MEASURED: dict[tuple[str, int, int, int], str] = {}


def measured_fastest(candidates: dict[str, Callable[[], torch.Tensor]], cache: dict,
                     key: tuple) -> tuple[str, torch.Tensor | None]:
    """The fastest of ``candidates`` (name -> call) from one warm-up and one timed call each, cached under ``key``.

    Returns the name and, when it measured now, the winner's result (every candidate computes the same thing),
    else None. Used by the FPS and kNN ``auto`` backends.
    """
    if key in cache:
        return cache[key], None
    results, times = {}, {}
    for name, call in candidates.items():
        results[name] = call()  # warm-up: compiles the numba kernel, allocates
        if results[name].is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if results[name].is_cuda:
            torch.cuda.synchronize()
        times[name] = time.perf_counter() - start
    best = min(times, key=times.get)
    cache[key] = best
    return best, results[best]


def resolve_fps_backend(backend: FpsBackend, device: torch.device | str) -> str:
    """Check a named backend against ``device`` (``auto`` is returned as is: it is resolved per call)."""
    available = available_fps_backends(device)
    if backend == "auto":
        return "auto"
    if backend not in _BACKENDS:
        raise ValueError(f"unknown FPS backend {backend!r}; choose one of {['auto', *_BACKENDS]}")
    if backend not in available:
        raise RuntimeError(
            f"FPS backend {backend!r} is not available for device {torch.device(device)} "
            f"(available: {available})"
        )
    return backend


def farthest_point_sample(
    points: torch.Tensor,
    num_samples: int,
    backend: FpsBackend = "auto",
    exclude_near_origin: bool = False,
) -> torch.Tensor:
    """Indices of ``num_samples`` farthest-point centres.

    Args:
        points: (B, N, 3) float cloud.
        num_samples: number of centres G (1 <= G <= N).
        backend: ``auto`` | ``torch`` | ``fpsample`` | ``numba`` | ``pointnet2``; every backend returns identical
            indices. ``auto``: the fastest available, measured on the first call per device and shape.
        exclude_near_origin: reproduce the pointnet2_ops kernel's near-origin filter (see module docstring).
    Returns:
        (B, G) int64 indices into N, in selection order (first is always 0).
    """
    name = resolve_fps_backend(backend, points.device)
    if name == "auto":
        available = available_fps_backends(points.device)
        if len(available) == 1:
            name = available[0]
        else:
            calls = {n: (lambda n=n: _BACKENDS[n](points, num_samples, exclude_near_origin)) for n in available}
            key = (points.device.type, points.shape[0], points.shape[1], num_samples)
            name, result = measured_fastest(calls, _MEASURED, key)
            if result is not None:
                return result
    return _BACKENDS[name](points, num_samples, exclude_near_origin)
