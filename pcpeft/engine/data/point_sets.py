"""The point-cloud classification data sets: ScanObjectNN, ModelNet40, ModelNet few-shot, the embedded demo set and
a user's own folder of scans, each built from its typed recipe section."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ...datasets import ModelNet40, ModelNetFewShot, ScanObjectNN
from ...datasets.demo_shapes import CLASSES as DEMO_CLASSES
from ...datasets.demo_shapes import ensure_demo_dataset
from ..recipe.schema import (
    ModelNet40Settings,
    ModelNetFewShotSettings,
    PointCloudFolderSettings,
    ScanObjectNNSettings,
    SyntheticDemoSettings,
)
from .registry import register_dataset, require_root


@register_dataset("ScanObjectNN", ScanObjectNNSettings)
def scanobjectnn(settings: ScanObjectNNSettings, subset: str, seed: int | None = None) -> Dataset:
    """The official h5 files of ``settings.split`` under ``dataset.root``."""
    return ScanObjectNN(require_root(settings), settings.split, subset, seed=seed)


@register_dataset("ModelNet40", ModelNet40Settings)
def modelnet40(settings: ModelNet40Settings, subset: str, seed: int | None = None) -> Dataset:
    """ModelNet40 (or 10) from the resampled text files / FPS cache or the h5 release."""
    return ModelNet40(require_root(settings), subset, npoints=settings.cache_points, format=settings.format,
                      num_category=settings.num_category)


@register_dataset("ModelNetFewShot", ModelNetFewShotSettings)
def modelnet_fewshot(settings: ModelNetFewShotSettings, subset: str, seed: int | None = None) -> Dataset:
    """One episode (way, shot, fold) of the official few-shot pickles."""
    return ModelNetFewShot(require_root(settings), settings.way, settings.shot, settings.fold, subset)


@register_dataset("SyntheticDemo", SyntheticDemoSettings, synthetic=True)
def synthetic_demo(settings: SyntheticDemoSettings, subset: str, seed: int | None = None) -> Dataset:
    """The embedded demo shapes, generated under ``dataset.root`` on first use (OBJ_BG layout)."""
    root = require_root(settings)
    ensure_demo_dataset(root, settings.train_per_class, settings.test_per_class, settings.generator_seed)
    return ScanObjectNN(root, "OBJ_BG", subset, num_classes=len(DEMO_CLASSES), seed=seed, class_names=DEMO_CLASSES)


def _folder_validation(settings: PointCloudFolderSettings) -> Dataset | None:
    """ROOT/val/ when the folder has one."""
    if not (Path(require_root(settings)) / "val").is_dir():
        return None
    return point_folder(settings, "val")


@register_dataset("PointCloudFolder", PointCloudFolderSettings, validation=_folder_validation)
def point_folder(settings: PointCloudFolderSettings, subset: str, seed: int | None = None) -> Dataset:
    """A split of the user's own folder of scans (:class:`pcpeft.datasets.point_folder.PointCloudFolder`)."""
    from ...datasets.point_folder import PointCloudFolder

    return PointCloudFolder(require_root(settings), subset, npoints=settings.npoints,
                            test_fraction=settings.test_fraction, split_seed=settings.split_seed,
                            mesh_points=settings.mesh_points, upsample=settings.upsample,
                            nan_points=settings.nan_points, cache=settings.cache, cache_dir=settings.cache_dir)
