"""The part-segmentation data sets (items: points, category, part labels): ShapeNetPart and the embedded synthetic
parts set, which is written in ShapeNetPart's layout."""
from __future__ import annotations

from torch.utils.data import Dataset

from ..recipe.schema import ShapeNetPartSettings, SyntheticPartsSettings
from .registry import register_dataset, require_root


def _part_split(settings: ShapeNetPartSettings, subset: str, seed: int | None) -> Dataset:
    """``train`` is the recipe's ``train_split`` (the official ``trainval``, or ``train`` to keep ``val`` for
    choosing the best epoch); ``val`` and ``test`` are the data set's own."""
    from ...datasets.shapenet_part import ShapeNetPart

    split = settings.train_split if subset == "train" else subset
    return ShapeNetPart(require_root(settings), split, npoints=settings.npoints,
                        normal_channel=settings.normal_channel, seed=0 if seed is None else seed)


def _part_validation(settings: ShapeNetPartSettings) -> Dataset | None:
    """The ``val`` split when training on ``train`` (with ``trainval`` it is part of the training data)."""
    if settings.train_split != "train":
        return None
    return build_part_set(settings, "val")


def build_part_set(settings: ShapeNetPartSettings, subset: str, seed: int | None = None) -> Dataset:
    """A split of either part data set (the synthetic one generated under its root first)."""
    if isinstance(settings, SyntheticPartsSettings):
        return synthetic_parts(settings, subset, seed)
    return shapenet_part(settings, subset, seed)


@register_dataset("ShapeNetPart", ShapeNetPartSettings, task="partseg", validation=_part_validation)
def shapenet_part(settings: ShapeNetPartSettings, subset: str, seed: int | None = None) -> Dataset:
    """The official ShapeNetPart folder."""
    return _part_split(settings, subset, seed)


@register_dataset("SyntheticParts", SyntheticPartsSettings, task="partseg", synthetic=True,
                  validation=_part_validation)
def synthetic_parts(settings: SyntheticPartsSettings, subset: str, seed: int | None = None) -> Dataset:
    """The embedded synthetic parts set, (re)generated under ``dataset.root`` when its settings change."""
    from ...datasets.demo_parts import ensure_parts_dataset

    ensure_parts_dataset(require_root(settings), settings.train_per_category, settings.val_per_category,
                         settings.test_per_category, settings.generator_seed)
    return _part_split(settings, subset, seed)
