"""ScanObjectNN (Uy et al., ICCV 2019) in its released h5 layout: 15 classes, 2048 points per object.

Files (under ``root``, usually ``datasets/ScanObjectNN/h5_files``):
    OBJ_BG     main_split/{training,test}_objectdataset.h5
    OBJ_ONLY   main_split_nobg/{training,test}_objectdataset.h5
    PB_T50_RS  main_split/{training,test}_objectdataset_augmentedrot_scale75.h5
each with ``data`` float32 (N, 2048, 3) and ``label`` int (N,). Like the reference, points are not normalised and
a training sample's point order is shuffled (the test order is kept).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .h5 import read_h5
from .validation import check_labels, check_points

CLASSES = ("bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed", "pillow",
           "sink", "sofa", "toilet")

SPLITS = {
    "OBJ_BG": ("main_split", ""),
    "OBJ_ONLY": ("main_split_nobg", ""),
    "PB_T50_RS": ("main_split", "_augmentedrot_scale75"),
}


def split_file(root: str | Path, split: str, subset: str) -> Path:
    """Path of the h5 file of ``split`` ('OBJ_BG' | 'OBJ_ONLY' | 'PB_T50_RS') and ``subset`` ('train' | 'test')."""
    if split not in SPLITS:
        raise ValueError(f"unknown ScanObjectNN split {split!r}; choose one of {list(SPLITS)}")
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    folder, suffix = SPLITS[split]
    name = f"{'training' if subset == 'train' else 'test'}_objectdataset{suffix}.h5"
    return Path(root) / folder / name


class ScanObjectNN(Dataset):
    """One ScanObjectNN split. Item: (points float32 (2048, 3), label int64).

    Args:
        root: folder holding ``main_split/`` and ``main_split_nobg/``.
        split: 'OBJ_BG' | 'OBJ_ONLY' | 'PB_T50_RS'.
        subset: 'train' | 'test'.
        shuffle_points: shuffle each sample's point order (default: True for train, as the reference).
        num_classes: class count labels are checked against (15).
        class_names: names of the classes (default: ScanObjectNN's 15, or the numbers for another count).
        seed: seeds the point shuffling for reproducible runs (None: numpy's global state); see ``set_epoch``.
    """

    def __init__(self, root: str | Path, split: str = "OBJ_BG", subset: str = "train",
                 shuffle_points: bool | None = None, num_classes: int = len(CLASSES), seed: int | None = None,
                 class_names: tuple[str, ...] | None = None) -> None:
        self.path = split_file(root, split, subset)
        self.split, self.subset = split, subset
        arrays = read_h5(self.path, ("data", "label"), f"ScanObjectNN {split} {subset}")
        self.points = check_points(arrays["data"], self.path)
        self.labels = check_labels(arrays["label"], len(self.points), num_classes, self.path)
        self.points = np.ascontiguousarray(self.points[..., :3])
        self.shuffle_points = subset == "train" if shuffle_points is None else shuffle_points
        if class_names is None:
            class_names = CLASSES if num_classes == len(CLASSES) else tuple(str(i) for i in range(num_classes))
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.classes = tuple(class_names)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """With a seed, the point shuffle of sample i in epoch e depends on (seed, e, i) only: reproducible with
        any number of loader workers and after a resume."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        points = self.points[index]
        if self.shuffle_points:
            rng = np.random.default_rng([self.seed, self.epoch, index]) if self.seed is not None else np.random
            points = points[rng.permutation(points.shape[0])]
        return torch.from_numpy(np.array(points, dtype=np.float32)), int(self.labels[index])
