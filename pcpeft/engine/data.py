"""Datasets and batch transforms from the ``dataset`` / ``augmentation`` sections of a recipe."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..datasets import (Compose, FPSResample, ModelNet40, ModelNetFewShot, RandomSubsetOfFPS, RotateAboutUpAxis,
                        ScaleAndTranslate, ScanObjectNN)
from ..datasets.demo_shapes import CLASSES as DEMO_CLASSES
from ..datasets.demo_shapes import ensure_demo_dataset
from .config import ConfigError

DATASETS = ("ScanObjectNN", "ModelNet40", "ModelNetFewShot", "SyntheticDemo", "Digits", "ImageFolder", "VTAB",
            "GeneratedImages", "PointCloudFolder", "ShapeNetPart", "SyntheticParts")
IMAGE_DATASETS = ("Digits", "ImageFolder", "VTAB", "GeneratedImages")
#: part-segmentation data sets (items: points, category, part labels)
PART_DATASETS = ("ShapeNetPart", "SyntheticParts")
SYNTHETIC_DATASETS = ("SyntheticDemo", "SyntheticParts", "GeneratedImages")


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
    if name == "PointCloudFolder":
        return point_folder(spec, subset)
    if name in PART_DATASETS:
        return part_dataset(spec, subset, seed)
    ensure_demo_dataset(root, spec.get("train_per_class"), spec.get("test_per_class"), spec.get("generator_seed"))
    return ScanObjectNN(root, "OBJ_BG", subset, num_classes=len(DEMO_CLASSES), seed=seed, class_names=DEMO_CLASSES)


FOLDER_OPTIONS = ("npoints", "test_fraction", "split_seed", "mesh_points", "upsample", "nan_points", "cache",
                  "cache_dir")


def point_folder(spec: dict, subset: str) -> Dataset:
    """A ``PointCloudFolder`` split from the recipe's dataset section (keys missing from ``spec``: defaults)."""
    from ..datasets.point_folder import PointCloudFolder

    return PointCloudFolder(spec["root"], subset, **{k: spec[k] for k in FOLDER_OPTIONS if k in spec})


def part_dataset(spec: dict, subset: str, seed: int | None = None) -> Dataset:
    """A ShapeNetPart-layout split: ``train`` is the recipe's ``train_split`` (the official ``trainval``, or
    ``train`` to keep ``val`` for choosing), ``val`` and ``test`` the data set's own. The synthetic parts set is
    generated under its root first (regenerated when its settings change)."""
    from ..datasets.shapenet_part import ShapeNetPart

    if spec["name"] == "SyntheticParts":
        from ..datasets.demo_parts import ensure_parts_dataset

        ensure_parts_dataset(spec["root"], spec["train_per_category"], spec["val_per_category"],
                             spec["test_per_category"], spec["generator_seed"])
    split = spec["train_split"] if subset == "train" else subset
    return ShapeNetPart(spec["root"], split, npoints=spec["npoints"], normal_channel=spec["normal_channel"],
                        seed=0 if seed is None else seed)


def validation_dataset(spec: dict) -> Dataset | None:
    """The given validation split of a data set (a PointCloudFolder with ROOT/val/; a part data set trained on
    its ``train`` split: its ``val``), else None."""
    if spec.get("name") in PART_DATASETS:
        return part_dataset(spec, "val") if spec["train_split"] == "train" else None
    if spec.get("name") != "PointCloudFolder" or not (Path(spec["root"]) / "val").is_dir():
        return None
    return point_folder(spec, "val")


def dataset_record(train_set: Dataset, exp_dir: Path | None, num_classes: int | None = None) -> dict:
    """What a run records about its data in config.yaml's ``run`` section: the class names (when the data set has
    them) and, for a PointCloudFolder, ``split.json`` (every split's files, written into ``exp_dir``). A
    PointCloudFolder whose class folders are not ``num_classes`` (the model's) is a :class:`ConfigError`."""
    record: dict = {}
    classes = getattr(train_set, "classes", None)
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        record["class_names"] = list(classes)
    splits = getattr(train_set, "splits", None)
    if splits is not None and hasattr(splits, "record"):
        if num_classes is not None and len(splits.classes) != num_classes:
            raise ConfigError(f"model.num_classes is {num_classes} but {splits.root} has {len(splits.classes)} "
                              f"class folders ({', '.join(splits.classes)}); leave model.num_classes out of a "
                              f"PointCloudFolder recipe to take the folder count")
        if exp_dir is not None:
            (exp_dir / "split.json").write_text(json.dumps(splits.record(), indent=2))
        record["split_file"] = "split.json"
    return record


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
    if name == "GeneratedImages":
        return generated_images(spec, subset)
    norm = {"mean": tuple(spec.get("mean", IMAGENET_MEAN)), "std": tuple(spec.get("std", IMAGENET_STD))}
    if spec.get("root") is None:
        raise ConfigError("dataset.root is not set")
    if name == "ImageFolder":
        return image_folder(Path(spec["root"]) / subset, size, **norm)
    lists = {"train": spec.get("train_list", "train800val200.txt"), "test": spec.get("test_list", "test.txt")}
    return vtab_list(spec["root"], lists[subset], size, **norm)


GENERATED_OPTIONS = ("num_classes", "train_per_class", "test_per_class", "generator_seed", "raw_size")


def generated_images(spec: dict, subset: str) -> Dataset:
    """A ``GeneratedImages`` split (procedural glyphs, generated in memory) from the recipe's dataset section;
    ``mean`` / ``std`` default to 0.5 as for Digits."""
    from ..datasets.generated_images import GeneratedImages

    norm = {key: tuple(spec[key]) for key in ("mean", "std") if spec.get(key) is not None}
    options = {key: spec[key] for key in GENERATED_OPTIONS if spec.get(key) is not None}
    return GeneratedImages(subset, spec.get("img_size", 224), **options, **norm)


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
