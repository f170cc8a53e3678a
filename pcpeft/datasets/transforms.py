"""Batch transforms used by the recipes, each a small composable object on (B, N, C) tensors (xyz first).

They run on the batch after loading, as the references do (on the GPU when training there). Every random draw
comes from an optional ``torch.Generator`` so runs are reproducible.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from ..ops.fps import farthest_point_sample
from ..ops.grouping import gather_points

#: Point-MAE's FPS oversampling before the random training subset (runner_finetune): npoints -> point_all.
REFERENCE_OVERSAMPLE = {1024: 1200, 2048: 2400, 4096: 4800, 8192: 8192}


def oversample_size(npoints: int, available: int | None = None) -> int:
    """FPS pool size before a random ``npoints`` subset: the reference table, else 1.2x; capped at ``available``."""
    size = REFERENCE_OVERSAMPLE.get(npoints, math.ceil(1.2 * npoints))
    return size if available is None else min(size, available)


def _uniform(shape, low, high, generator, device) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * (high - low) + low).to(device)


class ScaleAndTranslate:
    """Per sample: xyz * U(scale_low, scale_high)^3 + U(-translate, translate)^3 (Point-MAE's augmentation)."""

    def __init__(self, scale_low: float = 2 / 3, scale_high: float = 3 / 2, translate: float = 0.2,
                 generator: torch.Generator | None = None) -> None:
        self.scale_low, self.scale_high, self.translate, self.generator = scale_low, scale_high, translate, generator

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        batch = points.shape[0]
        scale = _uniform((batch, 1, 3), self.scale_low, self.scale_high, self.generator, points.device)
        shift = _uniform((batch, 1, 3), -self.translate, self.translate, self.generator, points.device)
        out = points.clone()
        out[..., :3] = points[..., :3] * scale + shift
        return out


class RotateAboutUpAxis:
    """Per sample: rotation by a uniform angle in [0, max_angle) about ``axis`` (default y, the up axis of
    ScanObjectNN and ModelNet's resampled data), as the PEFT repos' ``PointcloudRotate``. Normals rotate too.
    ``per_batch``: one angle for the whole batch (GAPrompt's runner rotates each batch as one)."""

    def __init__(self, axis: str = "y", max_angle: float = 2 * math.pi,
                 generator: torch.Generator | None = None, per_batch: bool = False) -> None:
        if axis not in "xyz" or len(axis) != 1:
            raise ValueError(f"axis must be 'x', 'y' or 'z', got {axis!r}")
        self.axis, self.max_angle, self.generator = "xyz".index(axis), max_angle, generator
        self.per_batch = per_batch

    def matrices(self, batch: int) -> torch.Tensor:
        """(batch, 3, 3) rotation matrices (one shared matrix repeated with ``per_batch``)."""
        draws = 1 if self.per_batch else batch
        angle = (torch.rand(draws, generator=self.generator) * self.max_angle).expand(batch)
        cos, sin = torch.cos(angle), torch.sin(angle)
        rot = torch.zeros(batch, 3, 3)
        a, b = [i for i in range(3) if i != self.axis]
        rot[:, self.axis, self.axis] = 1
        rot[:, a, a], rot[:, a, b], rot[:, b, a], rot[:, b, b] = cos, sin, -sin, cos
        return rot

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        rot = self.matrices(points.shape[0]).to(points.device, points.dtype)
        out = points.clone()
        out[..., :3] = points[..., :3] @ rot
        if points.shape[-1] >= 6:
            out[..., 3:6] = points[..., 3:6] @ rot
        return out


class Jitter:
    """Add clipped Gaussian noise N(0, sigma) clipped to [-clip, clip] to xyz."""

    def __init__(self, sigma: float = 0.01, clip: float = 0.05, generator: torch.Generator | None = None) -> None:
        self.sigma, self.clip, self.generator = sigma, clip, generator

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        noise = (torch.randn(points[..., :3].shape, generator=self.generator) * self.sigma).clamp(-self.clip, self.clip)
        out = points.clone()
        out[..., :3] = points[..., :3] + noise.to(points.device, points.dtype)
        return out


class FPSResample:
    """Farthest point sampling down to ``npoints`` (test-time resampling). (B, N, C) -> (B, npoints, C)."""

    def __init__(self, npoints: int) -> None:
        self.npoints = npoints

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        if points.shape[1] == self.npoints:
            return points
        idx = farthest_point_sample(points[..., :3].contiguous(), self.npoints)
        return gather_points(points, idx)


class RandomSubsetOfFPS:
    """Point-MAE's training sampling: FPS to ``point_all`` (1200 for 1024, 2400 for 2048, 4800 for 4096, 8192 for
    8192, else 1.2x; capped at N), then one random subset of ``npoints`` of those for the whole batch.
    (B, N, C) -> (B, npoints, C). With N == npoints this is a random permutation."""

    def __init__(self, npoints: int, point_all: int | None = None, generator: torch.Generator | None = None) -> None:
        self.npoints = npoints
        self.point_all = point_all or oversample_size(npoints)
        self.generator = generator

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        point_all = min(self.point_all, points.shape[1])
        if point_all < self.npoints:
            raise ValueError(f"cannot take {self.npoints} points from clouds of {points.shape[1]} points")
        idx = farthest_point_sample(points[..., :3].contiguous(), point_all)
        choice = torch.randperm(point_all, generator=self.generator)[: self.npoints].to(idx.device)
        return gather_points(points, idx[:, choice])


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            points = transform(points)
        return points
