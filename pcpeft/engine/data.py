"""Datasets and batch transforms from the ``dataset`` / ``augmentation`` sections of a recipe."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..datasets import (Compose, FPSResample, ModelNet40, ModelNetFewShot, RandomSubsetOfFPS, RotateAboutUpAxis,
                        ScaleAndTranslate, ScanObjectNN)
from ..datasets.demo_shapes import CLASSES as DEMO_CLASSES
from ..datasets.demo_shapes import ensure_demo_dataset
from .config import ConfigError

DATASETS = ("ScanObjectNN", "ModelNet40", "ModelNetFewShot", "SyntheticDemo", "Digits", "ImageFolder", "VTAB")
IMAGE_DATASETS = ("Digits", "ImageFolder", "VTAB")


def build_dataset(spec: dict, subset: str, seed: int | None = None) -> Dataset:
    """``spec`` = the recipe's ``dataset`` section; ``subset`` 'train' | 'test'."""
    name = spec.get("name")
    root = spec.get("root")
    if name not in DATASETS:
        raise ConfigError(f"dataset.name {name!r} is not one of {list(DATASETS)}")
    if name in IMAGE_DATASETS:
        return _image_dataset(name, spec, subset)
    if root is None:
        raise ConfigError("dataset.root is not set")
    if name == "ScanObjectNN":
        return ScanObjectNN(root, spec.get("split", "OBJ_BG"), subset, seed=seed)
    if name == "ModelNet40":
        return ModelNet40(root, subset, npoints=spec.get("cache_points", 8192), format=spec.get("format", "resampled"),
                          num_category=spec.get("num_category", 40))
    if name == "ModelNetFewShot":
        return ModelNetFewShot(root, spec["way"], spec["shot"], spec["fold"], subset)
    ensure_demo_dataset(root, spec.get("train_per_class"), spec.get("test_per_class"), spec.get("generator_seed"))
    return ScanObjectNN(root, "OBJ_BG", subset, num_classes=len(DEMO_CLASSES), seed=seed, class_names=DEMO_CLASSES)


def train_transform(npoints: int, augmentation: dict, generator: torch.Generator) -> Compose:
    """Point-MAE training sampling (FPS oversample + random subset) then the switched-on augmentations."""
    steps = [RandomSubsetOfFPS(npoints, generator=generator)]
    if augmentation.get("scale_translate", True):
        steps.append(ScaleAndTranslate(generator=generator))
    if augmentation.get("rotate", False):
        steps.append(RotateAboutUpAxis(augmentation.get("up_axis", "y"), generator=generator))
    return Compose(steps)


def test_transform(npoints: int) -> FPSResample:
    """One deterministic pass: FPS down to ``npoints`` (no-op when the clouds already have that many)."""
    return FPSResample(npoints)


def describe_augmentation(augmentation: dict) -> str:
    parts = ["fps-oversample+random-subset"]
    if augmentation.get("scale_translate", True):
        parts.append("scale[2/3,3/2]+translate[0.2]")
    if augmentation.get("rotate", False):
        parts.append(f"rotate-about-{augmentation.get('up_axis', 'y')}")
    return ", ".join(parts)


def _image_dataset(name: str, spec: dict, subset: str) -> Dataset:
    from ..datasets.images import IMAGENET_MEAN, IMAGENET_STD, Digits, image_folder, vtab_list

    size = spec.get("img_size", 224)
    if name == "Digits":
        return Digits(subset, size)
    norm = {"mean": tuple(spec.get("mean", IMAGENET_MEAN)), "std": tuple(spec.get("std", IMAGENET_STD))}
    if spec.get("root") is None:
        raise ConfigError("dataset.root is not set")
    if name == "ImageFolder":
        return image_folder(Path(spec["root"]) / subset, size, **norm)
    lists = {"train": spec.get("train_list", "train800val200.txt"), "test": spec.get("test_list", "test.txt")}
    return vtab_list(spec["root"], lists[subset], size, **norm)


def is_image_config(config: dict) -> bool:
    return config.get("dataset", {}).get("name") in IMAGE_DATASETS


class Identity:
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


class RandomHorizontalFlip:
    """Flip each image of a (B, C, H, W) batch left-right with probability 0.5."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        flip = (torch.rand(batch.shape[0], generator=self.generator) < 0.5).to(batch.device)
        return torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)


def batch_transforms(config: dict, generator: torch.Generator):
    """(train transform, test transform) for the recipe's modality."""
    if is_image_config(config):
        flip = config.get("augmentation", {}).get("hflip", False)
        return (RandomHorizontalFlip(generator) if flip else Identity()), Identity()
    npoints = config["dataset"].get("npoints", 1024)
    return train_transform(npoints, config.get("augmentation", {}), generator), test_transform(npoints)
