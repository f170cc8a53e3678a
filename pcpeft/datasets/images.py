"""Image datasets for the 2D branch: ImageFolder directories, VTAB-1k list files, and the embedded default,
scikit-learn's bundled handwritten digits (real scans, 8x8, 10 classes) upscaled to the model's input size.

Every item is (image float32 (3, S, S) normalised with ``mean``/``std``, label int64). Default normalisation is
ImageNet's (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225); JAX ViT checkpoints expect 0.5 / 0.5 (set ``mean`` and
``std`` in the dataset section).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .errors import DatasetError, require_file

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp"}


def to_model_input(image: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """(C, H, W) in [0, 1] -> (3, size, size) resized bilinearly and normalised (grey images replicated)."""
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    mean_t, std_t = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    return (image - mean_t) / std_t


def load_image(path: Path) -> torch.Tensor:
    """An image file -> (3, H, W) float in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"{path}: not a readable image ({err})") from None
    return torch.from_numpy(array).permute(2, 0, 1)


class ImageListDataset(Dataset):
    """(path, label) pairs read lazily."""

    def __init__(self, items: list[tuple[Path, int]], classes: tuple[str, ...], img_size: int,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.items, self.classes, self.img_size, self.mean, self.std = items, classes, img_size, mean, std
        self.num_classes = len(classes)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[index]
        return to_model_input(load_image(path), self.img_size, self.mean, self.std), label


def image_folder(root: str | Path, img_size: int, **norm) -> ImageListDataset:
    """``root/<class>/<image>``: classes sorted by folder name, as torchvision's ImageFolder."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist (expected {root}/<class>/<image files>)")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir()))
    items = [(p, i) for i, c in enumerate(classes) for p in sorted((root / c).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES]
    if not items:
        raise DatasetError(f"{root}: no images found in <class>/ sub-folders")
    return ImageListDataset(items, classes, img_size, **norm)


def vtab_list(root: str | Path, list_file: str, img_size: int, **norm) -> ImageListDataset:
    """VTAB-1k layout: ``root/<list_file>`` (``train800val200.txt``, ``test.txt``...) with "path label" lines."""
    root = Path(root)
    listing = require_file(root / list_file, "VTAB-1k list")
    items = []
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetError(f"{listing}:{n}: expected 'path label', got {line!r}")
        items.append((root / parts[0], int(parts[1])))
    labels = sorted({label for _, label in items})
    if labels and (labels[0] < 0):
        raise DatasetError(f"{listing}: negative label {labels[0]}")
    classes = tuple(str(i) for i in range(max(labels) + 1 if labels else 0))
    return ImageListDataset(items, classes, img_size, **norm)


class Digits(Dataset):
    """scikit-learn's 1,797 handwritten digits (8x8, 16 grey levels) upscaled to ``img_size``; a fixed
    stratified 80/20 train/test split (seed 0). Bundled with scikit-learn: nothing is downloaded."""

    classes = tuple(str(i) for i in range(10))
    num_classes = 10

    def __init__(self, subset: str = "train", img_size: int = 224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        if subset not in ("train", "test"):
            raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
        digits = load_digits()
        index = np.arange(len(digits.target))
        train_idx, test_idx = train_test_split(index, test_size=0.2, random_state=0, stratify=digits.target)
        chosen = train_idx if subset == "train" else test_idx
        images = torch.from_numpy(digits.images[chosen].astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
        self.images = torch.stack([to_model_input(img, img_size, mean, std) for img in images])
        self.labels = torch.from_numpy(digits.target[chosen].astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])
