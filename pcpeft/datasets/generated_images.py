"""Procedural glyph images for pre-training the 2D branch: ``num_classes`` classes of pen-stroke glyphs generated
in memory from a seed, no download and no real images.

Each class is one random glyph: 1-4 pen strokes, each a quadratic Bezier curve or an elliptic arc (open or
closed), drawn from ``(generator_seed, class)``. Each sample re-draws its class's glyph with every stroke bent by
a smooth random offset, a random affine map (rotation, anisotropic scale, shear), the glyph's bounding box fitted
into the frame with a random margin and offset, and a random pen width; the strokes are rasterised as a binary
``4 * raw_size`` square bitmap and pooled over 4x4 blocks (ink coverage in [0, 1], 17 levels), as the bitmaps of
the UCI handwritten digits were. Deterministic: the same settings give the same pixels.

Every item is (image float32 (3, img_size, img_size): the ``raw_size`` coverage map resized bilinearly and
normalised with ``mean`` / ``std``, label int64), as :class:`pcpeft.datasets.images.Digits`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetError
from .images import to_model_input

#: bitmap pixels pooled into one stored pixel (per side)
POOL = 4
#: points each stroke is sampled at (a polyline of ``STROKE_POINTS - 1`` segments)
STROKE_POINTS = 24
SUBSETS = ("train", "test")

Stroke = np.ndarray  # (STROKE_POINTS, 2) points in the unit square, y down


def _bezier(rng: np.random.Generator) -> Stroke:
    """A quadratic Bezier curve: end points and control point in [0.1, 0.9]^2."""
    p0, p1, p2 = rng.uniform(0.1, 0.9, size=(3, 2))
    t = np.linspace(0.0, 1.0, STROKE_POINTS)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _arc(rng: np.random.Generator) -> Stroke:
    """An elliptic arc (a closed loop in a third of the cases) around a centre in [0.3, 0.7]^2."""
    centre = rng.uniform(0.3, 0.7, size=2)
    radii = rng.uniform(0.1, 0.35, size=2)
    start = rng.uniform(0, 2 * np.pi)
    sweep = 2 * np.pi if rng.random() < 1 / 3 else rng.uniform(0.5 * np.pi, 1.6 * np.pi)
    angle = start + np.linspace(0.0, sweep, STROKE_POINTS)
    return centre + radii * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def class_glyph(generator_seed: int, label: int) -> list[Stroke]:
    """The prototype of class ``label``: 1-4 strokes, each (STROKE_POINTS, 2) in the unit square."""
    rng = np.random.default_rng([generator_seed, 0, label])
    count = int(rng.choice([1, 2, 3, 4], p=[0.15, 0.35, 0.35, 0.15]))
    return [_arc(rng) if rng.random() < 0.4 else _bezier(rng) for _ in range(count)]


def _sample_points(glyph: list[Stroke], rng: np.random.Generator) -> np.ndarray:
    """One sample's strokes (S, STROKE_POINTS, 2) in the unit square: smooth jitter, affine, bounding-box fit."""
    strokes = np.stack(glyph)
    # smooth per-stroke jitter: a random offset at each end, interpolated along the stroke
    ends = rng.normal(0.0, 0.035, size=(len(glyph), 2, 2))
    t = np.linspace(0.0, 1.0, STROKE_POINTS)[None, :, None]
    strokes = strokes + (1 - t) * ends[:, :1] + t * ends[:, 1:]
    angle, shear = rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)
    scale = rng.uniform(0.8, 1.2, size=2)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag(scale)
    points = strokes.reshape(-1, 2) @ matrix.T
    low, high = points.min(axis=0), points.max(axis=0)
    size = float((high - low).max()) or 1.0
    extent = rng.uniform(0.75, 0.95)
    offset = 0.5 + rng.uniform(-0.05, 0.05, size=2)
    points = (points - (low + high) / 2) * (extent / size) + offset
    return points.reshape(strokes.shape)


def render(strokes: np.ndarray, raw_size: int, pen_width: float) -> np.ndarray:
    """Strokes (S, P, 2) in the unit square -> ink coverage (raw_size, raw_size) in [0, 1]: a binary bitmap of
    ``POOL * raw_size`` pixels per side (a pixel is ink within ``pen_width / 2`` of a stroke), pooled POOLxPOOL."""
    side = POOL * raw_size
    centres = ((np.arange(side, dtype=np.float32) + 0.5) / side)
    px, py = np.tile(centres, side)[:, None], np.repeat(centres, side)[:, None]  # (side^2, 1), row-major
    points = strokes.astype(np.float32)
    start, delta = points[:, :-1].reshape(-1, 2), (points[:, 1:] - points[:, :-1]).reshape(-1, 2)  # (segments, 2)
    sx, sy, dx, dy = start[None, :, 0], start[None, :, 1], delta[None, :, 0], delta[None, :, 1]  # (1, segments)
    inv_length2 = 1.0 / np.maximum(dx * dx + dy * dy, 1e-12)
    rx, ry = px - sx, py - sy  # (side^2, segments)
    along = np.clip((rx * dx + ry * dy) * inv_length2, 0.0, 1.0)
    ex, ey = rx - along * dx, ry - along * dy
    ink = ((ex * ex + ey * ey).min(axis=1) <= (pen_width / 2) ** 2).astype(np.float32)
    return ink.reshape(raw_size, POOL, raw_size, POOL).mean(axis=(1, 3))


def generate(num_classes: int, per_class: int, subset: str, generator_seed: int, raw_size: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 (num_classes * per_class, raw_size, raw_size) in [0, 1], labels int64 (N,)), class-major.
    Train and test samples come from disjoint random streams of the same class glyphs."""
    if subset not in SUBSETS:
        raise DatasetError(f"GeneratedImages: subset must be one of {SUBSETS}, got {subset!r}")
    stream = 1 + SUBSETS.index(subset)
    images = np.empty((num_classes * per_class, raw_size, raw_size), dtype=np.float32)
    for label in range(num_classes):
        glyph = class_glyph(generator_seed, label)
        for i in range(per_class):
            rng = np.random.default_rng([generator_seed, stream, label, i])
            strokes = _sample_points(glyph, rng)
            images[label * per_class + i] = render(strokes, raw_size, rng.uniform(0.1, 0.17))
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
    return images, labels


class GeneratedImages(Dataset):
    """The procedural glyph set (module docstring): ``num_classes`` classes named ``glyph000``..., ``train_per_class``
    or ``test_per_class`` samples each, generated in memory on construction (about 1 ms per sample)."""

    def __init__(self, subset: str = "train", img_size: int = 64, num_classes: int = 100,
                 train_per_class: int = 250, test_per_class: int = 20, generator_seed: int = 0, raw_size: int = 8,
                 mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> None:
        if num_classes < 2 or raw_size < 2:
            raise DatasetError(f"GeneratedImages: needs num_classes >= 2 and raw_size >= 2, got {num_classes} and "
                               f"{raw_size}")
        per_class = train_per_class if subset == "train" else test_per_class
        raw, labels = generate(num_classes, per_class, subset, generator_seed, raw_size)
        self.raw = torch.from_numpy(raw)  # (N, raw_size, raw_size) ink coverage in [0, 1]
        self.labels = torch.from_numpy(labels)
        self.classes = tuple(f"glyph{i:03d}" for i in range(num_classes))
        self.num_classes = num_classes
        self.img_size, self.mean, self.std = img_size, tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """(image (3, img_size, img_size) normalised, label)."""
        return to_model_input(self.raw[index][None], self.img_size, self.mean, self.std), int(self.labels[index])
