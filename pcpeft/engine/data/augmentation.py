"""Batch transforms from the recipe's ``augmentation`` section: the reference repos' training sampling and
augmentation for point clouds, a horizontal flip for images, and the deterministic test-time sampling."""
from __future__ import annotations

from typing import Callable

import torch

from ...datasets import Compose, FPSResample, RandomSubsetOfFPS, RotateAboutUpAxis, ScaleAndTranslate
from ..recipe.schema import AugmentationSettings, Settings

BatchTransform = Callable[[torch.Tensor], torch.Tensor]


def train_transform(npoints: int, augmentation: AugmentationSettings, generator: torch.Generator) -> Compose:
    """Point-MAE training sampling (FPS oversample + random subset) then the switched-on augmentations.
    (B, N, 3) -> (B, npoints, 3)."""
    steps = [RandomSubsetOfFPS(npoints, generator=generator)]
    if augmentation.scale_translate:
        steps.append(ScaleAndTranslate(generator=generator))
    if augmentation.rotate:
        steps.append(RotateAboutUpAxis(augmentation.up_axis, generator=generator,
                                       per_batch=augmentation.rotate_per == "batch"))
    return Compose(steps)


def test_transform(npoints: int) -> FPSResample:
    """One deterministic pass: FPS down to ``npoints`` (no-op when the clouds already have that many)."""
    return FPSResample(npoints)


def describe_augmentation(augmentation: AugmentationSettings) -> str:
    """The point-cloud training transforms in a few words (results.json's ``augmentation``)."""
    parts = ["fps-oversample+random-subset"]
    if augmentation.scale_translate:
        parts.append("scale[2/3,3/2]+translate[0.2]")
    if augmentation.rotate:
        parts.append(f"rotate-about-{augmentation.up_axis}" + ("-per-batch" if augmentation.rotate_per == "batch"
                                                                else ""))
    return ", ".join(parts)


def identity(batch: torch.Tensor) -> torch.Tensor:
    """The batch unchanged."""
    return batch


class RandomHorizontalFlip:
    """Flip each image of a (B, C, H, W) batch left-right with probability 0.5."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        flip = (torch.rand(batch.shape[0], generator=self.generator) < 0.5).to(batch.device)
        return torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)


def batch_transforms(settings: Settings, generator: torch.Generator) -> tuple[BatchTransform, BatchTransform]:
    """(train transform, test transform) for the recipe's modality."""
    if settings.modality == "images":
        return (RandomHorizontalFlip(generator) if settings.augmentation.hflip else identity), identity
    npoints = settings.dataset.npoints
    return train_transform(npoints, settings.augmentation, generator), test_transform(npoints)
