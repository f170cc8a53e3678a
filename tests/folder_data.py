"""A small folder data set of the synthetic demo shapes in every file format (shared by the folder-data tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pcpeft.datasets.demo_shapes import CLASSES, make_scan
from pcpeft.datasets.point_files import write_cloud

#: demo classes used (distinct shapes); the folder names sort in this order
FOLDER_CLASSES = ("bottle", "lamp", "table")
#: (suffix, ascii) in the order the files of a class cycle through; ".off" is a mesh
FORMATS = ((".ply", False), (".ply", True), (".pcd", False), (".xyz", False), (".npy", False), (".off", False))
TINY_MODEL = dict(name="point_mae", trans_dim=64, encoder_dims=64, depth=1, num_heads=2, num_group=16, group_size=8,
                  drop_path_rate=0.0)


def write_off_mesh(path: Path, label: int, rng: np.random.Generator) -> Path:
    """A closed mesh per class (box, stretched octahedron, flat box), randomly scaled. -> ``path``."""
    if label == 1:
        verts = np.array([[1, 0, 0], [-1, 0, 0], [0, 2, 0], [0, -2, 0], [0, 0, 1], [0, 0, -1]], float)
        faces = [(0, 2, 4), (2, 1, 4), (1, 3, 4), (3, 0, 4), (2, 0, 5), (1, 2, 5), (3, 1, 5), (0, 3, 5)]
    else:
        sx, sy, sz = (0.3, 2.0, 0.3) if label == 0 else (2.0, 0.2, 1.0)
        verts = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)], float)
        faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1), (2, 3, 7), (2, 7, 6),
                 (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    verts = verts * rng.uniform(0.8, 1.2, size=3)
    lines = ["OFF", f"{len(verts)} {len(faces)} 0", *(" ".join(f"{v:.6f}" for v in row) for row in verts),
             *(f"3 {a} {b} {c}" for a, b, c in faces)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_point_folder(root: Path, per_class: int = 6, seed: int = 0, classes=FOLDER_CLASSES,
                       layout: str = "pool") -> Path:
    """ROOT/<class>/<class>_<i><suffix> cycling through :data:`FORMATS` (layout 'pool'), or the same files under
    ROOT/train/ and ROOT/test/ (every third file to test; layout 'split'). Returns ``root``."""
    rng = np.random.default_rng(seed)
    for name in classes:
        label = CLASSES.index(name)
        for i in range(per_class):
            subset = ("test" if i % 3 == 2 else "train") if layout == "split" else ""
            folder = root / subset / name
            folder.mkdir(parents=True, exist_ok=True)
            suffix, ascii_ = FORMATS[i % len(FORMATS)]
            path = folder / f"{name}_{i:03d}{suffix}"
            if suffix == ".off":
                write_off_mesh(path, classes.index(name), rng)
            else:
                write_cloud(path, make_scan(label, rng, clutter_prob=0.0), ascii=ascii_)
    return root


def folder_recipe(root: Path, epochs: int = 4, **dataset) -> dict:
    """A tiny-model recipe for a PointCloudFolder at ``root`` (num_classes left to the folder)."""
    return {"model": dict(TINY_MODEL),
            "dataset": {"name": "PointCloudFolder", "root": str(root), "npoints": 256, "mesh_points": 1024,
                        **dataset},
            "optimizer": {"lr": 2e-3, "weight_decay": 0.05},
            "scheduler": {"epochs": epochs, "warmup_epochs": 0},
            "train": {"batch_size": 4, "num_workers": 0}}
