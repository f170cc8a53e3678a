"""The SYNTHETIC part-segmentation demo set: procedural shapes with one part label per primitive, no download.

Six categories built from the blueprints of :mod:`pcpeft.datasets.demo_shapes`, each primitive belonging to a
part (global part ids in brackets)::

    Bottle  body [0] (cylinder and shoulder), neck [1]
    Chair   seat [2], back [3], legs [4]
    Lamp    base [5], pole [6], shade [7]
    Mug     body [8], handle [9]
    Stool   seat [10], legs [11]
    Table   top [12], legs [13]

Each shape is the whole surface (no partial view, no clutter, no noise), sampled area-weighted with the
primitive's exact outward normal, then scaled anisotropically (the normals follow), upright as ShapeNet is.

It is written in exactly the ShapeNetPart layout that :class:`~pcpeft.datasets.shapenet_part.ShapeNetPart` reads:
``synsetoffset2category.txt`` with made-up synsets ``9000000<k>``, ``<synset>/<id>.txt`` rows
``x y z nx ny nz part_label``, ``train_test_split/shuffled_{train,val,test}_file_list.json`` and a ``parts.json``
with the table above. Deterministic: each shape is drawn from a generator seeded with (seed, category, split,
number), so the same settings give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import demo_shapes
from .demo_shapes import BLUEPRINTS, CLASSES, PRIMITIVES, SETTINGS_FILE
from .errors import DatasetError
from .shapenet_part import CATEGORY_FILE, PARTS_FILE, SPLIT_FOLDER

MARKER_FILE = "SYNTHETIC_README.txt"
SPLIT_NAMES = ("train", "val", "test")
DEFAULTS = {"train_per_category": 40, "val_per_category": 10, "test_per_category": 15, "seed": 0,
            "npoints_per_shape": 2048}


@dataclass(frozen=True)
class PartCategory:
    """A demo category: its ``demo_shapes`` blueprint, part names, and the part (index into ``parts``) of each
    primitive in blueprint order; primitives past the end of ``primitive_parts`` take its last entry."""

    name: str
    blueprint: str
    parts: tuple[str, ...]
    primitive_parts: tuple[int, ...]

    def part_of(self, primitive: int) -> int:
        return self.primitive_parts[min(primitive, len(self.primitive_parts) - 1)]


CATEGORIES = (
    PartCategory("Bottle", "bottle", ("body", "neck"), (0, 0, 1)),
    PartCategory("Chair", "chair", ("seat", "back", "legs"), (0, 1, 2)),
    PartCategory("Lamp", "lamp", ("base", "pole", "shade"), (0, 1, 2)),
    PartCategory("Mug", "mug", ("body", "handle"), (0, 1)),
    PartCategory("Stool", "stool", ("seat", "legs"), (0, 1)),
    PartCategory("Table", "table", ("top", "legs"), (0, 1)),
)
SYNSETS = tuple(f"{90000001 + k}" for k in range(len(CATEGORIES)))


def part_table() -> dict[str, list[int]]:
    """{category: global part ids}: the parts numbered consecutively in category order."""
    table, first = {}, 0
    for category in CATEGORIES:
        table[category.name] = list(range(first, first + len(category.parts)))
        first += len(category.parts)
    return table


# -- outward unit normals of the demo_shapes primitives at their surface samples: (n, 3) -> (n, 3) ---------------
def _box_normals(points: np.ndarray, center, size) -> np.ndarray:
    offset = points - np.asarray(center, float)
    axis = np.argmax(np.abs(offset) - np.asarray(size, float) / 2, axis=1)  # the face the point lies on
    normals = np.zeros_like(points)
    rows = np.arange(len(points))
    normals[rows, axis] = np.sign(offset[rows, axis])
    return normals


def _cylinder_normals(points: np.ndarray, center, radius, height, caps=True) -> np.ndarray:
    offset = points - np.asarray(center, float)
    radial = np.hypot(offset[:, 0], offset[:, 2])
    on_side = np.abs(radial - radius) <= np.abs(np.abs(offset[:, 1]) - height / 2)
    side = np.stack([offset[:, 0], np.zeros(len(points)), offset[:, 2]], 1) / np.maximum(radial, 1e-12)[:, None]
    cap = np.stack([np.zeros(len(points)), np.sign(offset[:, 1]), np.zeros(len(points))], 1)
    return np.where(on_side[:, None], side, cap)


def _cone_normals(points: np.ndarray, center, r_bottom, r_top, height) -> np.ndarray:
    offset = points - np.asarray(center, float)
    theta = np.arctan2(offset[:, 2], offset[:, 0])
    normals = np.stack([height * np.cos(theta), np.full(len(points), r_bottom - r_top), height * np.sin(theta)], 1)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def _handle_normals(points: np.ndarray, center, radius, tube) -> np.ndarray:
    offset = points - np.asarray(center, float)
    u = np.arctan2(offset[:, 1], offset[:, 0])
    ring = np.stack([radius * np.cos(u), radius * np.sin(u), np.zeros(len(points))], 1)
    normals = offset - ring
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


NORMALS = {"box": _box_normals, "cyl": _cylinder_normals, "cone": _cone_normals, "handle": _handle_normals}


def sample_part_shape(category: PartCategory, rng: np.random.Generator, count: int) -> np.ndarray:
    """One random instance of ``category``: (count, 7) float64 rows x y z nx ny nz local part index."""
    primitives = BLUEPRINTS[CLASSES.index(category.blueprint)](rng)
    built = [PRIMITIVES[name](**params) for name, params in primitives]
    areas = np.array([area for area, _ in built])
    per_primitive = rng.multinomial(count, areas / areas.sum())
    rows = []
    for k, ((name, params), (_, sampler), n) in enumerate(zip(primitives, built, per_primitive)):
        if n:
            points = sampler(n, rng)
            rows.append(np.hstack([points, NORMALS[name](points, **params), np.full((n, 1), category.part_of(k))]))
    shape = np.concatenate(rows)
    scale = rng.uniform(0.8, 1.2, size=3)
    shape[:, :3] *= scale
    normals = shape[:, 3:6] / scale  # normals transform with the inverse transpose
    shape[:, 3:6] = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    return shape[rng.permutation(count)]


def _write_shape(path: Path, shape: np.ndarray, first_part: int) -> None:
    labels = shape[:, 6].astype(np.int64) + first_part
    lines = [f"{x:.6f} {y:.6f} {z:.6f} {a:.6f} {b:.6f} {c:.6f} {p}"
             for (x, y, z, a, b, c), p in zip(shape[:, :6].tolist(), labels.tolist())]
    path.write_text("\n".join(lines) + "\n")


def generator_settings(train_per_category: int, val_per_category: int, test_per_category: int, seed: int,
                       npoints_per_shape: int) -> dict:
    """What the files depend on: the sizes, the seed, the points per shape and the generators' source (sha256
    of this module and of demo_shapes, whose blueprints it samples)."""
    code = hashlib.sha256(Path(__file__).read_bytes() + Path(demo_shapes.__file__).read_bytes()).hexdigest()
    settings = {"train_per_category": int(train_per_category), "val_per_category": int(val_per_category),
                "test_per_category": int(test_per_category), "seed": int(seed),
                "npoints_per_shape": int(npoints_per_shape), "generator_sha256": code}
    settings["settings_sha256"] = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()
    return settings


def write_parts_dataset(root: str | Path, train_per_category: int = 40, val_per_category: int = 10,
                        test_per_category: int = 15, seed: int = 0, npoints_per_shape: int = 2048) -> Path:
    """Generate the synthetic set into ``root`` (ShapeNetPart layout); returns ``root``.

    Refuses (DatasetError) a ``root`` that holds a ShapeNetPart set not made by this generator. Shape files of an
    earlier generation in the demo's synset folders are removed first."""
    root = Path(root)
    if (root / CATEGORY_FILE).is_file() and not (root / MARKER_FILE).is_file():
        raise DatasetError(f"{root}: holds a ShapeNetPart set that is not the synthetic one ({root / CATEGORY_FILE} "
                           f"without {MARKER_FILE}); refusing to overwrite it")
    (root / SETTINGS_FILE).unlink(missing_ok=True)  # written last: a killed generation is regenerated next time
    table = part_table()
    counts = dict(zip(SPLIT_NAMES, (train_per_category, val_per_category, test_per_category)))
    listing: dict[str, list[str]] = {split: [] for split in SPLIT_NAMES}
    for c, (category, synset) in enumerate(zip(CATEGORIES, SYNSETS)):
        folder = root / synset
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.txt"):
            old.unlink()
        for s, split in enumerate(SPLIT_NAMES):
            for k in range(counts[split]):
                shape_id = f"{category.name.lower()}_{split}_{k:04d}"
                shape = sample_part_shape(category, np.random.default_rng([seed, c, s, k]), npoints_per_shape)
                _write_shape(folder / f"{shape_id}.txt", shape, table[category.name][0])
                listing[split].append(f"shape_data/{synset}/{shape_id}")
    (root / SPLIT_FOLDER).mkdir(exist_ok=True)
    order = np.random.default_rng([seed, len(CATEGORIES)])
    for split, entries in listing.items():
        shuffled = [entries[i] for i in order.permutation(len(entries))]
        (root / SPLIT_FOLDER / f"shuffled_{split}_file_list.json").write_text(json.dumps(shuffled))
    (root / CATEGORY_FILE).write_text("".join(f"{c.name}\t{s}\n" for c, s in zip(CATEGORIES, SYNSETS)))
    (root / PARTS_FILE).write_text(json.dumps(table, indent=1))
    (root / MARKER_FILE).write_text(
        "Synthetic part-segmentation demo data generated by pcpeft.datasets.demo_parts (procedural primitives, "
        "made-up synsets). Not ShapeNet.\n" +
        "".join(f"{c.name}: {', '.join(c.parts)}\n" for c in CATEGORIES) + f"seed: {seed}\n")
    settings_path = root / SETTINGS_FILE
    tmp = settings_path.with_name(settings_path.name + ".tmp")
    tmp.write_text(json.dumps(generator_settings(train_per_category, val_per_category, test_per_category, seed,
                                                 npoints_per_shape), indent=2))
    os.replace(tmp, settings_path)
    return root


def ensure_parts_dataset(root: str | Path, train_per_category: int | None = None,
                         val_per_category: int | None = None, test_per_category: int | None = None,
                         seed: int | None = None, npoints_per_shape: int | None = None) -> Path:
    """The synthetic set in ``root``, (re)generated when it is absent, was made by another version of the
    generator, or with other settings than the ones given (the hash in ``root/generator_settings.json`` differs).

    A setting given as None means "whatever the existing set was generated with" (:data:`DEFAULTS` for a new
    set)."""
    root = Path(root)
    try:
        recorded = json.loads((root / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        recorded = {}
    given = {"train_per_category": train_per_category, "val_per_category": val_per_category,
             "test_per_category": test_per_category, "seed": seed, "npoints_per_shape": npoints_per_shape}
    chosen = {k: (v if v is not None else recorded.get(k, DEFAULTS[k])) for k, v in given.items()}
    files = [root / CATEGORY_FILE, root / PARTS_FILE] + [root / SPLIT_FOLDER / f"shuffled_{split}_file_list.json"
                                                          for split in SPLIT_NAMES]
    if recorded.get("settings_sha256") != generator_settings(**chosen)["settings_sha256"] or \
            not all(f.is_file() for f in files):
        write_parts_dataset(root, **chosen)
    return root
