"""ShapeNetPart part segmentation in the folder layout of Point-MAE / PointNet++ (``..._v0_normal``).

Layout of ``root`` (``shapenetcore_partanno_segmentation_benchmark_v0_normal/``)::

    synsetoffset2category.txt                  # one "<Category> <synset>" line per category, e.g. "Airplane 02691156"
    <synset>/<id>.txt                          # one row per point: x y z nx ny nz part_label (whitespace-separated)
    train_test_split/shuffled_{train,val,test}_file_list.json   # JSON lists of "shape_data/<synset>/<id>"
    parts.json                                 # optional pcpeft extension, see below

Semantics follow the reference ``PartNormalDataset``:

* category index = the line order of ``synsetoffset2category.txt`` (the official file lists the 16 categories
  alphabetically, so Airplane is 0 and Table is 15);
* ``split`` is 'train', 'val', 'test' or 'trainval' (train + val); the shapes are ordered by category index, then
  by file name. Split entries of synsets not in ``synsetoffset2category.txt`` are skipped (deleting lines there
  selects categories), and so are shape files no split lists; a listed shape whose file is missing is an error;
* part labels are global ids (0..49 for ShapeNet); each category owns the ids of
  :data:`SHAPENET_PART_CATEGORIES`;
* xyz is centred at its centroid and divided by its largest norm (normals are kept as they are); without
  ``normal_channel`` only xyz is returned;
* every item draws ``npoints`` rows with replacement, so shapes with fewer points than ``npoints`` are fine. The
  reference draws from the global numpy state; here the draw comes from a generator seeded with
  ``(seed, epoch, index)``: random across epochs, identical on a rerun. The trainer calls :meth:`set_epoch`.

Extension for data sets whose categories are not ShapeNet's: a ``parts.json`` in ``root`` holding
``{"Category": [global part ids, ...], ...}`` replaces :data:`SHAPENET_PART_CATEGORIES` (the ``category_parts``
argument replaces both). Every category of ``synsetoffset2category.txt`` needs an entry; a part id belongs to one
category only.

Shape files are read on first use, checked (7 columns, finite values, at least one point, integer labels of the
shape's own category) and kept in memory as float32. Every problem raises :class:`DatasetError` (a missing file:
:class:`DatasetFileNotFoundError`) naming the file.
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DATA_README, DatasetError, DatasetFileNotFoundError
from .modelnet import normalize_unit_sphere

FOLDER_NAME = "shapenetcore_partanno_segmentation_benchmark_v0_normal"
DOWNLOAD_URL = f"https://shapenet.cs.stanford.edu/media/{FOLDER_NAME}.zip"
CATEGORY_FILE = "synsetoffset2category.txt"
PARTS_FILE = "parts.json"
SPLIT_FOLDER = "train_test_split"
SPLITS = {"train": ("train",), "val": ("val",), "test": ("test",), "trainval": ("train", "val")}
COLUMNS = 7  # x y z nx ny nz part_label

SHAPENET_PART_CATEGORIES: dict[str, tuple[int, ...]] = {
    "Airplane": (0, 1, 2, 3), "Bag": (4, 5), "Cap": (6, 7), "Car": (8, 9, 10, 11), "Chair": (12, 13, 14, 15),
    "Earphone": (16, 17, 18), "Guitar": (19, 20, 21), "Knife": (22, 23), "Lamp": (24, 25, 26, 27),
    "Laptop": (28, 29), "Motorbike": (30, 31, 32, 33, 34, 35), "Mug": (36, 37), "Pistol": (38, 39, 40),
    "Rocket": (41, 42, 43), "Skateboard": (44, 45, 46), "Table": (47, 48, 49),
}
"""The reference's category -> global part ids table (16 categories, 50 parts)."""


def _missing(path: Path, what: str) -> DatasetFileNotFoundError:
    return DatasetFileNotFoundError(
        f"{what}: expected {path} is missing. ShapeNetPart is the folder {FOLDER_NAME}/ unpacked from "
        f"{DOWNLOAD_URL}; see {DATA_README} for the layout.")


def read_categories(root: Path) -> list[tuple[str, str]]:
    """``root/synsetoffset2category.txt`` -> [(category, synset), ...] in file order (= category index)."""
    path = root / CATEGORY_FILE
    if not path.is_file():
        raise _missing(path, "ShapeNetPart category list")
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetError(f"{path}: line {number} {line!r} is not '<Category> <synset>'")
        pairs.append((fields[0], fields[1]))
    for column, what in ((0, "category"), (1, "synset")):
        names = [pair[column] for pair in pairs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise DatasetError(f"{path}: {what} {repeated[0]!r} is listed more than once")
    if not pairs:
        raise DatasetError(f"{path}: lists no categories")
    return pairs


def _read_text(path: Path) -> str:
    """The text of ``path``; a :class:`DatasetError` naming it when it is not UTF-8 text."""
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a text file (not UTF-8)") from None


def _read_json(path: Path, kind: type, expected: str):
    """The JSON value in ``path``, which must be a ``kind`` (``expected`` says what it should hold)."""
    text = _read_text(path)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: nested deeper than the parser goes
        raise DatasetError(f"{path}: not valid JSON ({str(err)[:200] or 'nested too deeply'})") from None
    if not isinstance(value, kind):
        raise DatasetError(f"{path}: expected {expected}")
    return value


def read_part_table(root: Path) -> tuple[Mapping[str, Sequence[int]], str]:
    """(category -> global part ids, where the table comes from): ``root/parts.json`` if present, else the
    official :data:`SHAPENET_PART_CATEGORIES`."""
    path = root / PARTS_FILE
    if not path.is_file():
        return SHAPENET_PART_CATEGORIES, "the official ShapeNetPart part table"
    return _read_json(path, dict, 'an object {"Category": [part ids, ...], ...}'), str(path)


def _valid_part_ids(ids: object, category: str, source: str) -> list[int]:
    if not isinstance(ids, (list, tuple)) or not ids or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise DatasetError(f"{source}: the parts of {category!r} must be a non-empty list of integers >= 0, "
                           f"got {ids!r}")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{source}: the parts of {category!r} repeat an id: {list(ids)}")
    return [int(i) for i in ids]


def parts_by_category_index(categories: Sequence[str], table: Mapping[str, Sequence[int]] = SHAPENET_PART_CATEGORIES,
                            source: str = "the part table") -> list[list[int]]:
    """The global part ids of each category, in category-index order: ``result[c]`` = parts of ``categories[c]``.

    Raises :class:`DatasetError` naming ``source`` when a category has no entry, an entry is not a list of
    distinct integers >= 0, or two categories share a part id."""
    owner: dict[int, str] = {}
    result = []
    for category in categories:
        if category not in table:
            raise DatasetError(f"{source}: has no part ids for category {category!r} (it lists "
                               f"{sorted(table)})")
        ids = _valid_part_ids(table[category], category, source)
        for part in ids:
            if part in owner:
                raise DatasetError(f"{source}: part id {part} belongs to both {owner[part]!r} and {category!r}")
            owner[part] = category
        result.append(ids)
    return result


def _split_path(root: Path, split: str) -> Path:
    return root / SPLIT_FOLDER / f"shuffled_{split}_file_list.json"


def read_split(root: Path, split: str) -> dict[tuple[str, str], Path]:
    """The shapes of one official split file: {(synset, id): the JSON file listing it}."""
    path = _split_path(root, split)
    if not path.is_file():
        raise _missing(path, f"ShapeNetPart {split} split")
    entries = _read_json(path, list, "a JSON list of 'shape_data/<synset>/<id>' strings")
    shapes = {}
    for entry in entries:
        fields = entry.split("/") if isinstance(entry, str) else []
        if len(fields) != 3 or not all(fields):
            raise DatasetError(f"{path}: entry {entry!r} is not 'shape_data/<synset>/<id>'")
        shapes[(fields[1], fields[2])] = path
    return shapes


def read_shape(path: Path, parts: Sequence[int], category: str) -> tuple[np.ndarray, np.ndarray]:
    """One ``<synset>/<id>.txt`` -> (points (N, 6) float32 as stored, part labels (N,) int32), checked."""
    if not path.is_file():
        raise _missing(path, f"ShapeNetPart {category} shape")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on an empty file; that is reported below
            data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise DatasetError(f"{path}: not rows of {COLUMNS} numbers ({err})") from None
    if data.size == 0:
        raise DatasetError(f"{path}: contains no points")
    if data.shape[1] != COLUMNS:
        raise DatasetError(f"{path}: rows have {data.shape[1]} values; expected {COLUMNS} "
                           f"(x y z nx ny nz part_label)")
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        raise DatasetError(f"{path}: row {int(np.flatnonzero(~finite)[0]) + 1} contains NaN or Inf")
    labels = data[:, -1]
    if not np.array_equal(labels, np.round(labels)):
        raise DatasetError(f"{path}: part labels (last column) must be integers")
    outside = ~np.isin(labels, np.asarray(parts))
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DatasetError(f"{path}: row {row + 1} has part label {int(labels[row])}, which is not a part of "
                           f"{category} (its parts: {list(parts)})")
    return data[:, :6].astype(np.float32), labels.astype(np.int32)


class ShapeNetPart(Dataset):
    """ShapeNetPart part segmentation (see the module docstring for the layout and the reference semantics).

    Item ``i``: (points float32 (npoints, 3) or (npoints, 6) with ``normal_channel``, category int64 scalar,
    part labels int64 (npoints,) as global part ids).

    Args:
        root: the ``shapenetcore_partanno_segmentation_benchmark_v0_normal`` folder (or one in its layout).
        split: 'train' | 'val' | 'test' | 'trainval'.
        npoints: rows drawn (with replacement) per item.
        normal_channel: also return the normals (columns 3-5).
        seed: with the epoch and the index, seeds each item's draw (integers >= 0).
        category_parts: {category: global part ids}; replaces ``parts.json`` and the official table.

    Attributes: ``categories`` / ``classes`` (names by category index), ``synsets``, ``category_parts`` (global
    part ids by category index), ``num_categories``, ``num_parts`` (1 + the largest part id), ``items``
    ([(category index, shape file)] in item order), ``epoch``.
    """

    def __init__(self, root: str | Path, split: str = "trainval", npoints: int = 2048, normal_channel: bool = False,
                 seed: int = 0, category_parts: Mapping[str, Sequence[int]] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise _missing(self.root, "ShapeNetPart data folder")
        if split not in SPLITS:
            raise DatasetError(f"ShapeNetPart split must be one of {list(SPLITS)}, got {split!r}")
        if int(npoints) < 1:
            raise DatasetError(f"ShapeNetPart npoints must be at least 1, got {npoints}")
        self.split, self.npoints, self.normal_channel = split, int(npoints), normal_channel
        self.seed, self.epoch = int(seed), 0
        pairs = read_categories(self.root)
        self.categories = tuple(name for name, _ in pairs)
        self.classes = self.categories
        self.synsets = tuple(synset for _, synset in pairs)
        table, source = (category_parts, "the category_parts argument") if category_parts is not None \
            else read_part_table(self.root)
        self.category_parts = parts_by_category_index(self.categories, table, source)
        self.num_categories = len(self.categories)
        self.num_parts = 1 + max(max(parts) for parts in self.category_parts)
        self.items = self._list_items()
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _list_items(self) -> list[tuple[int, Path]]:
        """[(category index, file)] of the split: by category index, then by file name (as the reference)."""
        listed: dict[tuple[str, str], Path] = {}
        for part in SPLITS[self.split]:
            listed.update(read_split(self.root, part))
        items = []
        for index, synset in enumerate(self.synsets):
            ids = sorted((shape for syn, shape in listed if syn == synset), key=lambda shape: f"{shape}.txt")
            folder = self.root / synset
            if ids and not folder.is_dir():
                raise _missing(folder, f"ShapeNetPart {self.categories[index]} folder (listed in "
                                       f"{listed[(synset, ids[0])]})")
            present = {path.name for path in folder.glob("*.txt")} if ids else set()
            absent = [shape for shape in ids if f"{shape}.txt" not in present]
            if absent:
                raise _missing(folder / f"{absent[0]}.txt", f"ShapeNetPart shape listed in "
                                                           f"{listed[(synset, absent[0])]} ({len(absent)} missing)")
            items.extend((index, folder / f"{shape}.txt") for shape in ids)
        if not items:
            raise DatasetError(f"{self.root}: the {self.split} split lists no shape of the categories in "
                               f"{self.root / CATEGORY_FILE}")
        return items

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that, with the seed and the index, seeds each item's draw of rows."""
        self.epoch = int(epoch)

    def _shape(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(points (N, 3 or 6) float32 with normalised xyz, labels (N,) int32), read once and then cached."""
        if index not in self._cache:
            category, path = self.items[index]
            data, labels = read_shape(path, self.category_parts[category], self.categories[category])
            points = data if self.normal_channel else data[:, :3]
            points = np.array(points, dtype=np.float32)
            points[:, :3] = normalize_unit_sphere(points[:, :3].astype(np.float64))
            self._cache[index] = (points, labels)
        return self._cache[index]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = range(len(self))[index]
        points, labels = self._shape(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        choice = rng.choice(len(labels), self.npoints, replace=True)
        return (torch.from_numpy(points[choice]), torch.tensor(self.items[index][0], dtype=torch.int64),
                torch.from_numpy(labels[choice].astype(np.int64)))
