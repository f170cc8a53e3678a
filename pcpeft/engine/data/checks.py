"""Checks of a run's data against its recipe and model, made before any step trains, each naming the file or the
recipe key at fault: an empty split (the h5 / list file / folder that held no samples), labels beyond the model's
head (``model.num_classes``), more groups or neighbours than points sampled (``model.num_group``,
``model.group_size`` vs ``dataset.npoints``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import Dataset, Subset

from ...datasets.errors import DatasetError
from ..recipe.schema import Section
from ..recipe.yaml_io import ConfigError

#: the words a message uses for a split -> the split's name in the data set's files and folders
SPLIT_FOLDERS = {"training": "train", "validation": "val"}


def underlying(dataset: Dataset) -> Dataset:
    """The data set beneath any ``Subset`` (a validation split carved from the training data)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _modelnet_source(data: Any, subset: str) -> Path:
    """The file a ModelNet40 split's samples come from: its FPS cache or its list of shapes (h5: list of files)."""
    root = Path(data.root)
    if getattr(data, "format", "resampled") == "h5":
        return root / f"{subset}_files.txt"
    count = getattr(data, "num_classes", 40)
    cache = root / f"modelnet{count}_{subset}_{data.npoints}pts_fps.dat"
    return cache if cache.is_file() else root / f"modelnet{count}_{subset}.txt"


def split_source(dataset: Dataset, section: Section, subset: str) -> str:
    """The file or folder the samples of ``dataset`` (split ``subset`` of the recipe's dataset ``section``) were read
    from:
    the h5 file (ScanObjectNN, the demo set), the few-shot pickle, the list or cache file (ModelNet40), the split
    folder (a PointCloudFolder), else ``dataset.root``."""
    subset = SPLIT_FOLDERS.get(subset, subset)
    data = underlying(dataset)
    if getattr(data, "path", None) is not None:
        return str(data.path)
    splits = getattr(data, "splits", None)
    if splits is not None and getattr(data, "root", None) is not None:
        folder = Path(data.root) / subset if getattr(splits, "layout", "") == "folders" else Path(data.root)
        return f"{folder}/"
    if type(data).__name__ == "ModelNet40":
        return str(_modelnet_source(data, subset))
    return str(section.root or section.name)


def check_not_empty(dataset: Dataset, section: Section, subset: str) -> None:
    """A :class:`DatasetError` naming the file that held no samples when ``dataset`` is empty."""
    if len(dataset) == 0:
        what = {"train": "training", "val": "validation"}.get(subset, subset)
        raise DatasetError(f"{split_source(dataset, section, subset)}: holds no samples, so the {what} split of "
                           f"{section.name} is empty; check that file (or dataset.root = {section.root})")


def dataset_labels(dataset: Dataset) -> np.ndarray | None:
    """The integer labels of every sample beneath ``dataset`` without loading a cloud or an image (None when the
    data set keeps no label list)."""
    data = underlying(dataset)
    labels = getattr(data, "labels", None)
    if labels is None and isinstance(getattr(data, "items", None), list):
        labels = [label for _, label in data.items]
    if labels is None:
        return None
    return np.asarray(labels, dtype=np.int64).reshape(-1)


def data_class_count(dataset: Dataset) -> tuple[int, int | None]:
    """(classes the data set needs: its largest label + 1, else the length of its class list; the largest label,
    None when the data set keeps no label list)."""
    labels = dataset_labels(dataset)
    if labels is not None and labels.size:
        largest = int(labels.max())
        return largest + 1, largest
    classes = getattr(underlying(dataset), "classes", None)
    return (len(classes) if isinstance(classes, (list, tuple)) else 0), None


def check_class_count(num_classes: int, splits: dict[str, Dataset], section: Section) -> None:
    """A :class:`ConfigError` when a label of any split (``{'train': ..., 'test': ...}``) is outside the model's
    ``model.num_classes`` logits, naming both counts and the file the labels came from."""
    for subset, dataset in splits.items():
        count, largest = data_class_count(dataset)
        if count > num_classes:
            labels = f"labels 0..{largest}" if largest is not None else "its class list"
            raise ConfigError(f"model.num_classes = {num_classes}, but the {subset} data of {section.name} "
                              f"({split_source(dataset, section, subset)}) has {count} classes ({labels}): set "
                              f"model.num_classes: {count} in the recipe (or --opts model.num_classes={count})")


def check_grouping(model: nn.Module, section: Section) -> None:
    """A :class:`ConfigError` when the model groups more centres (``model.num_group``) or more neighbours
    (``model.group_size``) than the clouds it is given have points (``dataset.npoints``)."""
    npoints = getattr(section, "npoints", None)  # an image data set has none
    config = getattr(getattr(model, "base_model", model), "config", None)
    if npoints is None or config is None:
        return
    for key in ("num_group", "group_size"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > npoints:
            raise ConfigError(f"model.{key} = {value} is larger than dataset.npoints = {npoints} (the points "
                              f"sampled per cloud): lower model.{key} to at most {npoints}, or raise "
                              f"dataset.npoints")


__all__ = ["check_class_count", "check_grouping", "check_not_empty", "data_class_count", "dataset_labels",
           "split_source", "underlying"]
