"""``PointCloudFolder``: your own point clouds, one folder per class (the point-cloud counterpart of an image folder).

Layouts (class names are the folder names, sorted; the label of a class is its index in that order)::

    ROOT/<class>/<file>                                   one pool, split by a seeded, stratified draw
    ROOT/train/<class>/<file>  ROOT/test/<class>/<file>   given splits (and ROOT/val/<class>/<file>, optional)

A class folder is searched recursively for the formats of :mod:`.point_files` (``.ply`` ascii/binary, ``.pcd``,
``.xyz``/``.txt``/``.pts``, ``.npy``, ``.off`` meshes); names starting with ``.`` are skipped. The seeded split
holds out ``test_fraction`` of each class (at least one file, at least one left to train on).

Preprocessing of one file (:func:`prepare_cloud`, also what ``tools/predict.py`` runs): read it (a mesh is
surface-sampled with ``mesh_points`` area-weighted points, seeded by the file name, as the ModelNet preparation
does), FPS down to ``npoints`` (the benchmark loaders' sampling), then centre and scale into the unit sphere.
The result is cached under ``cache_dir`` (default ``ROOT/.pcpeft-cache``), keyed by the settings and by each
file's path, size and modification time: a second epoch or run reads no file again, and a changed or added file
is the only one read anew.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DatasetError, DatasetFileNotFoundError
from .modelnet import normalize_unit_sphere
from .point_files import CLOUD_SUFFIXES, read_cloud

LOG = logging.getLogger("pcpeft")

SPLIT_FOLDERS = ("train", "test", "val")
CACHE_FOLDER = ".pcpeft-cache"
CACHE_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """How a file becomes a model input: ``npoints`` FPS samples in the unit sphere (see the module docstring)."""

    npoints: int = 1024
    mesh_points: int = 10000
    upsample: bool = False
    nan_points: str = "error"  # 'error' | 'drop'

    def key(self) -> str:
        text = json.dumps({"version": CACHE_VERSION, **self.__dict__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_cloud(path: str | Path, settings: Preprocessing) -> np.ndarray:
    """One file -> (npoints, 3) float32, FPS-sampled and normalised to the unit sphere.

    Raises :class:`DatasetError` naming the file when it is unreadable, empty, has NaN coordinates (unless
    ``nan_points='drop'``) or fewer than ``npoints`` points (unless ``upsample``).
    """
    from ..ops.fps import farthest_point_sample

    path = Path(path)
    rng = np.random.default_rng([zlib.crc32(path.name.encode())])
    try:
        points = read_cloud(path, settings.mesh_points, rng, settings.nan_points).points
    except DatasetError:
        raise
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: unreadable point cloud file ({type(err).__name__}: {err})") from None
    count = len(points)
    if count < settings.npoints:
        if not settings.upsample:
            raise DatasetError(f"{path}: {count} points, fewer than dataset.npoints = {settings.npoints}; lower "
                               f"dataset.npoints, or set dataset.upsample: true to repeat points up to "
                               f"{settings.npoints}")
        points = np.concatenate([points, points[rng.choice(count, settings.npoints - count, replace=True)]])
    elif count > settings.npoints:
        cloud = torch.from_numpy(np.ascontiguousarray(points[None], dtype=np.float32))
        points = points[farthest_point_sample(cloud, settings.npoints)[0].numpy()]
    return normalize_unit_sphere(points.astype(np.float64)).astype(np.float32)


def cloud_files(folder: Path) -> list[Path]:
    """Every supported point cloud file below ``folder`` (recursively, sorted; names starting with '.' skipped)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CLOUD_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _class_folders(base: Path) -> dict[str, list[Path]]:
    """{class: files} of ``base/<class>/...``; an empty class folder is an error naming it."""
    if not base.is_dir():
        raise DatasetFileNotFoundError(f"{base}: no such folder (a PointCloudFolder is ROOT/<class>/<file>, or "
                                       f"ROOT/train/<class>/<file> and ROOT/test/<class>/<file>)")
    names = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DatasetError(f"{base}: no class folders; expected {base}/<class>/<file>")
    found = {}
    for name in names:
        files = cloud_files(base / name)
        if not files:
            raise DatasetError(f"{base / name}: empty class folder: no point cloud file "
                               f"({', '.join(CLOUD_SUFFIXES)}) in it")
        found[name] = files
    return found


@dataclass
class FolderSplits:
    """The classes and the files of each split of a folder: ``files[subset]`` = [(path relative to root, label)]."""

    root: Path
    classes: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]
    layout: str  # 'folders' (ROOT/train, ROOT/test) | 'seeded' (one pool, split here)
    test_fraction: float
    split_seed: int

    def record(self) -> dict:
        """What a run writes into its folder (``split.json``): the layout, the classes and every split's files."""
        return {"root": str(self.root.resolve()), "layout": self.layout, "classes": list(self.classes),
                **({"test_fraction": self.test_fraction, "split_seed": self.split_seed}
                   if self.layout == "seeded" else {}),
                **{subset: [rel for rel, _ in entries] for subset, entries in self.files.items()}}


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def scan_point_folder(root: str | Path, test_fraction: float = 0.2, split_seed: int = 0) -> FolderSplits:
    """Find the classes and files of every split of ``root`` (see the module docstring for the layouts)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFileNotFoundError(f"{root}: no such folder (dataset.root of a PointCloudFolder)")
    if (root / "train").is_dir():
        return _given_splits(root)
    pools = _class_folders(root)
    classes = tuple(pools)
    rng = np.random.default_rng(split_seed)
    files: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for label, (name, paths) in enumerate(pools.items()):
        if len(paths) < 2:
            raise DatasetError(f"{root / name}: class {name!r} has 1 file; the seeded train/test split needs at "
                               f"least 2 per class (add files, or give ROOT/train/ and ROOT/test/ folders)")
        count = min(len(paths) - 1, max(1, int(round(test_fraction * len(paths)))))
        held = set(rng.choice(len(paths), size=count, replace=False).tolist())
        for index, path in enumerate(paths):
            files["test" if index in held else "train"].append((_relative(root, path), label))
    return FolderSplits(root, classes, files, "seeded", test_fraction, split_seed)


def _given_splits(root: Path) -> FolderSplits:
    others = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                    and d.name not in SPLIT_FOLDERS)
    if others:
        raise DatasetError(f"{root}: has train/ and also the folder(s) {others}; with split folders every class "
                           f"folder goes below train/, test/ (and val/)")
    if not (root / "test").is_dir():
        raise DatasetFileNotFoundError(f"{root}: has train/ but no test/ folder (ROOT/test/<class>/<file>)")
    train = _class_folders(root / "train")
    classes = tuple(train)
    files: dict[str, list[tuple[str, int]]] = {}
    for subset in SPLIT_FOLDERS:
        if subset != "train" and not (root / subset).is_dir():
            continue
        found = train if subset == "train" else _class_folders(root / subset)
        unknown = [name for name in found if name not in classes]
        if unknown:
            raise DatasetError(f"{root / subset / unknown[0]}: class {unknown[0]!r} is in {subset}/ but not in "
                               f"train/ (classes of train/: {', '.join(classes)}); a model cannot learn a class it "
                               f"never trains on")
        files[subset] = [(_relative(root, path), classes.index(name)) for name, paths in found.items()
                         for path in paths]
    return FolderSplits(root, classes, files, "folders", 0.0, 0)


def class_names(root: str | Path) -> tuple[str, ...]:
    """The sorted class folder names of a PointCloudFolder ``root`` (of ``root/train`` with split folders)."""
    return scan_point_folder(root).classes


# -- cache ------------------------------------------------------------------------------------------------------
def _file_keys(root: Path, relatives: list[str]) -> list[str]:
    keys = []
    for rel in relatives:
        stat = (root / rel).stat()
        keys.append(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}")
    return keys


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["keys"], data["points"]
    except Exception as err:  # noqa: BLE001 - any unreadable cache is rebuilt, never trusted
        LOG.warning(f"{path}: unreadable cache ({type(err).__name__}); rebuilding it")
        return None


def _write_cache(path: Path, keys: list[str], points: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as handle:
            np.savez(handle, keys=np.array(keys, dtype=str), points=points)
        os.replace(tmp, path)
    except OSError as err:
        LOG.warning(f"{path}: cannot write the preprocessing cache ({err}); continuing without it")


def load_prepared(root: Path, relatives: list[str], settings: Preprocessing, cache_file: Path | None,
                  progress: bool = True) -> np.ndarray:
    """(len(relatives), npoints, 3) float32 of the files, from the cache where each file's key still matches."""
    from tqdm import tqdm

    from ..progress import shown

    keys = _file_keys(root, relatives)
    cached = _read_cache(cache_file) if cache_file is not None else None
    known: dict[str, np.ndarray] = {}
    if cached is not None and cached[1].shape[1:] == (settings.npoints, 3):
        if len(cached[0]) == len(keys) and list(cached[0]) == keys:
            return np.ascontiguousarray(cached[1], dtype=np.float32)
        known = {str(key): cached[1][i] for i, key in enumerate(cached[0])}
    points = np.empty((len(keys), settings.npoints, 3), dtype=np.float32)
    todo = [i for i, key in enumerate(keys) if key not in known]
    for i, key in enumerate(keys):
        if key in known:
            points[i] = known[key]
    quiet = not shown(progress) or len(todo) < 20
    for i in tqdm(todo, desc=f"preparing {len(todo)} point cloud files", disable=quiet, leave=False):
        points[i] = prepare_cloud(root / relatives[i], settings)
    if cache_file is not None and todo:
        _write_cache(cache_file, keys, points)
    return points


class PointCloudFolder(Dataset):
    """One split of a folder of point cloud files. Item: (points float32 (npoints, 3) in the unit sphere, label).

    Args:
        root: ``ROOT`` (see the module docstring for the layouts).
        subset: 'train' | 'test' | 'val' (val only with a ``ROOT/val`` folder).
        npoints, mesh_points, upsample, nan_points: the :class:`Preprocessing` settings.
        test_fraction, split_seed: the seeded split of a single pool (ignored with split folders).
        cache: keep prepared clouds in ``cache_dir`` (default ``ROOT/.pcpeft-cache``).
    Attributes: ``classes`` (sorted class names), ``labels`` (N,) int64, ``files`` (N paths), ``splits``
    (:class:`FolderSplits`), ``points`` (N, npoints, 3).
    """

    def __init__(self, root: str | Path, subset: str = "train", npoints: int = 1024, test_fraction: float = 0.2,
                 split_seed: int = 0, mesh_points: int = 10000, upsample: bool = False, nan_points: str = "error",
                 cache: bool = True, cache_dir: str | Path | None = None, progress: bool = True) -> None:
        if subset not in SPLIT_FOLDERS:
            raise ValueError(f"subset must be one of {SPLIT_FOLDERS}, got {subset!r}")
        if nan_points not in ("error", "drop"):
            raise ValueError(f"nan_points must be 'error' or 'drop', got {nan_points!r}")
        self.root = Path(root)
        self.splits = scan_point_folder(self.root, test_fraction, split_seed)
        if subset not in self.splits.files:
            raise DatasetFileNotFoundError(f"{self.root}: no {subset} split (a {subset}/ folder beside train/)")
        self.subset, self.classes = subset, self.splits.classes
        self.settings = Preprocessing(npoints, mesh_points, upsample, nan_points)
        entries = self.splits.files[subset]
        relatives = [rel for rel, _ in entries]
        self.files = [self.root / rel for rel in relatives]
        self.labels = np.array([label for _, label in entries], dtype=np.int64)
        cache_file = None
        if cache:
            folder = Path(cache_dir) if cache_dir is not None else self.root / CACHE_FOLDER
            cache_file = folder / f"{subset}-{self.settings.key()}.npz"
        self.points = load_prepared(self.root, relatives, self.settings, cache_file, progress)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.points[index].copy()), int(self.labels[index])
