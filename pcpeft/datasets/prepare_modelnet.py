"""Build the ``modelnet40_normal_resampled`` layout (and optionally ``ply_hdf5_2048``-style h5) from Princeton
ModelNet ``.off`` meshes: ``<src>/<class>/{train,test}/<class>_<nnnn>.off``.

Per shape: ``points`` area-weighted surface samples with their triangle normals, centred and scaled into the unit
sphere, written as comma-separated ``x,y,z,nx,ny,nz`` rows (``%.6f``) to ``<out>/<class>/<id>.txt``; plus
``<name>_shape_names.txt`` and ``<name>_{train,test}.txt``. Coordinates keep the mesh's axes.
Deterministic: shape ``id`` is sampled with ``numpy.random.default_rng([seed, crc32(id)])``, so an interrupted run
resumes (finished files, written atomically, are skipped) to output identical to an uninterrupted one.
"""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .mesh import read_off, sample_surface


@dataclass
class PreparedShape:
    shape_id: str
    cls: str
    subset: str
    path: Path


def find_meshes(src: Path) -> list[PreparedShape]:
    """Every ``<class>/{train,test}/*.off`` under ``src``, sorted."""
    found = []
    for off in sorted(src.glob("*/*/*.off")):
        subset = off.parent.name
        if subset in ("train", "test"):
            found.append(PreparedShape(off.stem, off.parent.parent.name, subset, off))
    if not found:
        raise DatasetError(f"{src}: no meshes found at <class>/train/*.off or <class>/test/*.off")
    return found


def shape_rows(mesh: Path, shape_id: str, points: int, seed: int) -> np.ndarray:
    """Sample one mesh -> (points, 6) float32 rows x,y,z,nx,ny,nz in the unit sphere."""
    vertices, faces = read_off(mesh)
    rng = np.random.default_rng([seed, zlib.crc32(shape_id.encode())])
    xyz, normals, _ = sample_surface(vertices, faces, points, rng, str(mesh))
    xyz = xyz - xyz.mean(axis=0)
    xyz /= np.linalg.norm(xyz, axis=1).max()
    return np.concatenate([xyz, normals], axis=1).astype(np.float32)


def _write_text_atomic(path: Path, rows: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    np.savetxt(tmp, rows, fmt="%.6f", delimiter=",")
    os.replace(tmp, path)


def prepare_modelnet(src: str | Path, out: str | Path, points: int = 10000, seed: int = 0,
                     name: str = "modelnet40", h5_points: int = 0, progress: bool = True) -> dict[str, int]:
    """Prepare every mesh under ``src`` into ``out``; returns counts {'train': n, 'test': n, 'skipped': n}.

    ``h5_points > 0`` also writes ``ply_data_{train,test}{k}.h5`` (``data``, ``normal``, ``label``; 2048 shapes
    per file) with the first ``h5_points`` rows of each shape, plus ``{train,test}_files.txt`` and
    ``shape_names.txt``, under ``out/h5``.
    """
    from tqdm import tqdm

    from ..progress import shown

    src, out = Path(src), Path(out)
    shapes = find_meshes(src)
    classes = sorted({s.cls for s in shapes})
    out.mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "test": 0, "skipped": 0}
    for shape in tqdm(shapes, desc=f"sampling {len(shapes)} meshes", disable=not shown(progress)):
        target = out / shape.cls / f"{shape.shape_id}.txt"
        counts[shape.subset] += 1
        if target.is_file():
            counts["skipped"] += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_text_atomic(target, shape_rows(shape.path, shape.shape_id, points, seed))
    (out / f"{name}_shape_names.txt").write_text("\n".join(classes) + "\n")
    for subset in ("train", "test"):
        ids = [s.shape_id for s in shapes if s.subset == subset]
        (out / f"{name}_{subset}.txt").write_text("".join(f"{i}\n" for i in ids))
    if h5_points:
        _write_h5(shapes, classes, out, h5_points)
    return counts


def _write_h5(shapes: list[PreparedShape], classes: list[str], out: Path, count: int, per_file: int = 2048) -> None:
    import h5py

    folder = out / "h5"
    folder.mkdir(exist_ok=True)
    (folder / "shape_names.txt").write_text("\n".join(classes) + "\n")
    for subset in ("train", "test"):
        chosen = [s for s in shapes if s.subset == subset]
        names = []
        for k, start in enumerate(range(0, len(chosen), per_file)):
            part = chosen[start:start + per_file]
            rows = np.stack([np.loadtxt(out / s.cls / f"{s.shape_id}.txt", delimiter=",", dtype=np.float32)[:count]
                             for s in part])
            labels = np.array([[classes.index(s.cls)] for s in part], dtype=np.uint8)
            path = folder / f"ply_data_{subset}{k}.h5"
            tmp = path.with_name(path.name + ".tmp")
            with h5py.File(tmp, "w") as f:
                f["data"], f["normal"], f["label"] = rows[..., :3], rows[..., 3:], labels
            os.replace(tmp, path)
            names.append(path.name)
        (folder / f"{subset}_files.txt").write_text("".join(f"{n}\n" for n in names))
