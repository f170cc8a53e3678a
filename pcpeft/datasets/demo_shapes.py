"""The embedded SYNTHETIC demo set: a ScanObjectNN-like classification set built from primitives, no download.

12 object classes (table, chair, stool, lamp, mug, bottle, bookshelf, monitor, bed, sofa, bin, door), each a
randomly proportioned assembly of boxes, cylinders, cones, disks and a torus segment, sampled on its surface
(area-weighted), then made scan-like: a random partial view (a half-space cut keeping 55-90% of the points),
random anisotropic scale, rotation about the up (y) axis, Gaussian noise, and background clutter (a floor patch
and blobs, 0-25% of the points) in part of the samples. Every cloud has 2048 points, normalised into the unit
sphere before clutter is added.

It is written to disk in the ScanObjectNN h5 layout (``main_split/{training,test}_objectdataset.h5`` with
``data`` and ``label``) so training uses the real ScanObjectNN loader, under a folder named ``synthetic_demo``;
every table the tools print about it says "synthetic". Deterministic: the same seed gives the same bytes.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

CLASSES = ("table", "chair", "stool", "lamp", "mug", "bottle", "bookshelf", "monitor", "bed", "sofa", "bin", "door")
NUM_POINTS = 2048

Part = tuple[str, dict]  # (primitive name, parameters)


# -- primitive surfaces: each returns (area, sampler(n, rng) -> (n, 3)) ------------------------------------------
def _box(center, size):
    center, size = np.asarray(center, float), np.asarray(size, float)
    sx, sy, sz = size
    faces = [(0, sy * sz), (1, sx * sz), (2, sx * sy)]
    area = 2 * sum(a for _, a in faces)

    def sample(n, rng):
        axis_p = np.array([a for _, a in faces] * 2) / area
        which = rng.choice(6, size=n, p=axis_p)
        pts = (rng.random((n, 3)) - 0.5) * size
        axis = which % 3
        sign = np.where(which < 3, 0.5, -0.5)
        pts[np.arange(n), axis] = sign * size[axis]
        return pts + center
    return area, sample


def _cylinder(center, radius, height, caps=True):
    center = np.asarray(center, float)
    side = 2 * np.pi * radius * height
    cap = np.pi * radius ** 2
    area = side + (2 * cap if caps else cap)  # without caps: open top, closed bottom (mug, bin)

    def sample(n, rng):
        on_side = rng.random(n) < side / area
        theta = rng.random(n) * 2 * np.pi
        r = np.where(on_side, radius, radius * np.sqrt(rng.random(n)))
        y = np.where(on_side, (rng.random(n) - 0.5) * height,
                     np.where((rng.random(n) < 0.5) & caps, 0.5 * height, -0.5 * height))
        return np.stack([r * np.cos(theta), y, r * np.sin(theta)], 1) + center
    return area, sample


def _cone(center, r_bottom, r_top, height):
    center = np.asarray(center, float)
    slant = np.hypot(height, r_bottom - r_top)
    area = np.pi * (r_bottom + r_top) * slant

    def sample(n, rng):
        # area-weighted along the height: radius varies linearly
        u = rng.random(n)
        if abs(r_bottom - r_top) > 1e-9:
            t = (r_bottom - np.sqrt(r_bottom ** 2 - u * (r_bottom ** 2 - r_top ** 2))) / (r_bottom - r_top)
        else:
            t = u
        r = r_bottom + (r_top - r_bottom) * t
        theta = rng.random(n) * 2 * np.pi
        return np.stack([r * np.cos(theta), (t - 0.5) * height, r * np.sin(theta)], 1) + center
    return area, sample


def _handle(center, radius, tube):
    """Half torus in the x-y plane (a mug handle)."""
    center = np.asarray(center, float)
    area = 2 * np.pi * radius * 2 * np.pi * tube / 2

    def sample(n, rng):
        u = (rng.random(n) - 0.5) * np.pi  # half circle facing +x
        v = rng.random(n) * 2 * np.pi
        ring = radius + tube * np.cos(v)
        return np.stack([ring * np.cos(u), ring * np.sin(u), tube * np.sin(v)], 1) + center
    return area, sample


PRIMITIVES: dict[str, Callable] = {"box": _box, "cyl": _cylinder, "cone": _cone, "handle": _handle}


# -- class blueprints: random proportions -> list of parts ------------------------------------------------------
def _legs(rng, half_x, half_z, height, thickness, y0, round_legs):
    parts = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * (half_x - thickness), y0 + height / 2, sz * (half_z - thickness))
            parts.append(("cyl", dict(center=c, radius=thickness / 2, height=height)) if round_legs
                         else ("box", dict(center=c, size=(thickness, height, thickness))))
    return parts


def table(rng):
    w, d, h = rng.uniform(1.2, 2.0), rng.uniform(0.7, 1.2), rng.uniform(0.6, 0.9)
    top = rng.uniform(0.04, 0.08)
    return [("box", dict(center=(0, h, 0), size=(w, top, d)))] + _legs(rng, w / 2, d / 2, h - top / 2, 0.07, 0,
                                                                         rng.random() < 0.5)


def chair(rng):
    w, h = rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.5)
    back = rng.uniform(0.45, 0.7)
    return [("box", dict(center=(0, h, 0), size=(w, 0.05, w))),
            ("box", dict(center=(0, h + back / 2, -w / 2), size=(w, back, 0.05)))] + \
        _legs(rng, w / 2, w / 2, h, 0.045, 0, rng.random() < 0.5)


def stool(rng):
    r, h = rng.uniform(0.18, 0.26), rng.uniform(0.45, 0.75)
    parts = [("cyl", dict(center=(0, h, 0), radius=r, height=0.05))]
    n_legs = rng.integers(3, 5)
    for k in range(n_legs):
        a = 2 * np.pi * k / n_legs
        parts.append(("cyl", dict(center=(0.8 * r * np.cos(a), h / 2, 0.8 * r * np.sin(a)), radius=0.025, height=h)))
    return parts


def lamp(rng):
    h = rng.uniform(0.8, 1.4)
    shade = rng.uniform(0.2, 0.35)
    return [("cyl", dict(center=(0, 0.02, 0), radius=rng.uniform(0.12, 0.2), height=0.04)),
            ("cyl", dict(center=(0, h / 2, 0), radius=0.02, height=h)),
            ("cone", dict(center=(0, h, 0), r_bottom=shade, r_top=shade * rng.uniform(0.3, 0.6),
                          height=rng.uniform(0.2, 0.35)))]


def mug(rng):
    r, h = rng.uniform(0.35, 0.45), rng.uniform(0.8, 1.1)
    return [("cyl", dict(center=(0, h / 2, 0), radius=r, height=h, caps=False)),
            ("handle", dict(center=(r, h / 2, 0), radius=h * 0.25, tube=0.05))]


def bottle(rng):
    r, h = rng.uniform(0.2, 0.3), rng.uniform(0.9, 1.3)
    neck = rng.uniform(0.06, 0.1)
    shoulder = rng.uniform(0.15, 0.3)
    return [("cyl", dict(center=(0, h / 2, 0), radius=r, height=h)),
            ("cone", dict(center=(0, h + shoulder / 2, 0), r_bottom=r, r_top=neck, height=shoulder)),
            ("cyl", dict(center=(0, h + shoulder + 0.15, 0), radius=neck, height=0.3))]


def bookshelf(rng):
    w, h, d = rng.uniform(0.8, 1.2), rng.uniform(1.4, 2.0), rng.uniform(0.3, 0.4)
    parts = [("box", dict(center=(s * w / 2, h / 2, 0), size=(0.04, h, d))) for s in (-1, 1)]
    parts.append(("box", dict(center=(0, h / 2, -d / 2), size=(w, h, 0.02))))
    for k in range(rng.integers(3, 6) + 1):
        parts.append(("box", dict(center=(0, k * h / 4.5 + 0.02, 0), size=(w, 0.03, d))))
    return parts


def monitor(rng):
    w, h = rng.uniform(0.9, 1.3), rng.uniform(0.55, 0.8)
    stand = rng.uniform(0.2, 0.35)
    return [("box", dict(center=(0, stand + h / 2, 0), size=(w, h, 0.06))),
            ("box", dict(center=(0, stand / 2, -0.03), size=(0.08, stand, 0.05))),
            ("box", dict(center=(0, 0.015, 0), size=(0.4, 0.03, 0.3)))]


def bed(rng):
    w, length = rng.uniform(1.2, 1.8), rng.uniform(1.9, 2.2)
    return [("box", dict(center=(0, 0.3, 0), size=(w, 0.3, length))),
            ("box", dict(center=(0, 0.55, -length / 2), size=(w, rng.uniform(0.6, 1.0), 0.08))),
            ("box", dict(center=(0, 0.5, -length / 2 + 0.25), size=(w * 0.6, 0.1, 0.3)))]


def sofa(rng):
    w, d = rng.uniform(1.6, 2.4), rng.uniform(0.8, 1.0)
    arm = rng.uniform(0.15, 0.25)
    return [("box", dict(center=(0, 0.25, 0), size=(w, 0.4, d))),
            ("box", dict(center=(0, 0.65, -d / 2 + 0.1), size=(w, 0.5, 0.2))),
            ("box", dict(center=(-w / 2, 0.4, 0), size=(arm, 0.6, d))),
            ("box", dict(center=(w / 2, 0.4, 0), size=(arm, 0.6, d)))]


def bin_(rng):
    r, h = rng.uniform(0.25, 0.35), rng.uniform(0.5, 0.8)
    if rng.random() < 0.5:
        return [("cyl", dict(center=(0, h / 2, 0), radius=r, height=h, caps=False))]
    return [("cone", dict(center=(0, h / 2, 0), r_bottom=r * 0.8, r_top=r, height=h)),
            ("cyl", dict(center=(0, 0.01, 0), radius=r * 0.8, height=0.02))]


def door(rng):
    w, h = rng.uniform(0.8, 1.0), rng.uniform(1.9, 2.2)
    return [("box", dict(center=(0, h / 2, 0), size=(w, h, 0.05))),
            ("box", dict(center=(0, h / 2, 0), size=(w + 0.1, h + 0.05, 0.02))),
            ("cyl", dict(center=(w / 2 - 0.1, h / 2, 0.05), radius=0.03, height=0.1))]


BLUEPRINTS = (table, chair, stool, lamp, mug, bottle, bookshelf, monitor, bed, sofa, bin_, door)


def sample_object(label: int, rng: np.random.Generator, count: int = NUM_POINTS * 2) -> np.ndarray:
    """Surface samples of one random instance of class ``label``. -> (count, 3)."""
    built = [PRIMITIVES[name](**params) for name, params in BLUEPRINTS[label](rng)]
    areas = np.array([area for area, _ in built])
    per_part = rng.multinomial(count, areas / areas.sum())
    return np.concatenate([sampler(n, rng) for (_, sampler), n in zip(built, per_part) if n])


def _normalise(points: np.ndarray) -> np.ndarray:
    points = points - points.mean(axis=0)
    return points / np.linalg.norm(points, axis=1).max()


def make_scan(label: int, rng: np.random.Generator, clutter_prob: float = 0.5) -> np.ndarray:
    """One scan-like cloud (2048, 3) float32 of class ``label``."""
    pts = sample_object(label, rng)
    pts = pts * rng.uniform(0.8, 1.2, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    pts = _normalise(pts)
    view = rng.normal(size=3)
    view[1] = abs(view[1]) * 0.3  # views from around and a little above
    proj = pts @ (view / np.linalg.norm(view))
    keep = proj >= np.quantile(proj, rng.uniform(0.1, 0.45))  # the visible part faces the sensor
    pts = pts[keep]
    n_clutter = int(NUM_POINTS * rng.uniform(0.05, 0.25)) if rng.random() < clutter_prob else 0
    obj = pts[rng.choice(len(pts), NUM_POINTS - n_clutter, replace=len(pts) < NUM_POINTS - n_clutter)]
    obj = obj + rng.normal(scale=0.01, size=obj.shape)
    if n_clutter:
        floor_n = n_clutter // 2
        floor = np.stack([rng.uniform(-1.2, 1.2, floor_n), np.full(floor_n, obj[:, 1].min()) +
                          rng.normal(scale=0.01, size=floor_n), rng.uniform(-1.2, 1.2, floor_n)], 1)
        blob_centres = rng.uniform(-1.0, 1.0, size=(3, 3))
        blobs = blob_centres[rng.integers(0, 3, n_clutter - floor_n)] + \
            rng.normal(scale=0.08, size=(n_clutter - floor_n, 3))
        obj = np.concatenate([obj, floor, blobs])
    return obj[rng.permutation(NUM_POINTS)].astype(np.float32)


def make_split(per_class: int, seed: int, clutter_prob: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(data (N, 2048, 3) float32, label (N,) int64) with ``per_class`` samples of each class, class-interleaved."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(CLASSES)), per_class)
    data = np.stack([make_scan(int(label), rng, clutter_prob) for label in labels])
    return data, labels.astype(np.int64)


SETTINGS_FILE = "generator_settings.json"


def generator_settings(train_per_class: int, test_per_class: int, seed: int) -> dict:
    """What the generated files depend on: the sizes, the seed and the generator's own source (its sha256)."""
    import hashlib

    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    settings = {"train_per_class": int(train_per_class), "test_per_class": int(test_per_class), "seed": int(seed),
                "generator_sha256": code}
    settings["settings_sha256"] = hashlib.sha256(repr(sorted(settings.items())).encode()).hexdigest()
    return settings


def ensure_demo_dataset(root: str | Path, train_per_class: int | None = None, test_per_class: int | None = None,
                        seed: int | None = None) -> Path:
    """The demo set in ``root``, (re)generated when it is absent, was made by another version of the generator, or
    with other settings than the ones given (the hash in ``root/generator_settings.json`` differs).

    A setting given as None means "whatever the existing set was generated with" (80 / 25 / 0 for a new set), so
    a recipe that names no sizes reads a set generated by a tool or a test with other sizes."""
    import json

    root = Path(root)
    try:
        recorded = json.loads((root / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        recorded = {}
    defaults = {"train_per_class": 80, "test_per_class": 25, "seed": 0}
    given = {"train_per_class": train_per_class, "test_per_class": test_per_class, "seed": seed}
    chosen = {k: (v if v is not None else recorded.get(k, defaults[k])) for k, v in given.items()}
    wanted = generator_settings(**chosen)
    files = [root / "main_split" / f"{s}_objectdataset.h5" for s in ("training", "test")]
    if recorded.get("settings_sha256") != wanted["settings_sha256"] or not all(f.is_file() for f in files):
        write_demo_dataset(root, **chosen)
    return root


def write_demo_dataset(root: str | Path, train_per_class: int = 80, test_per_class: int = 25,
                       seed: int = 0) -> Path:
    """Generate the synthetic demo set into ``root/main_split/`` (ScanObjectNN h5 layout); returns ``root``.

    Readable with ``ScanObjectNN(root, 'OBJ_BG', subset, num_classes=12)``.
    """
    import h5py

    root = Path(root)
    folder = root / "main_split"
    folder.mkdir(parents=True, exist_ok=True)
    for subset, per_class, offset in (("training", train_per_class, 0), ("test", test_per_class, 1)):
        data, labels = make_split(per_class, seed * 1000 + offset)
        path = folder / f"{subset}_objectdataset.h5"
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w", track_order=True, libver="earliest") as f:
            f.create_dataset("data", data=data)
            f.create_dataset("label", data=labels)
            f.attrs["description"] = "pcpeft SYNTHETIC demo set (procedural shapes, ScanObjectNN layout)"
            f.attrs["classes"] = ",".join(CLASSES)
        os.replace(tmp, path)
    (root / "SYNTHETIC_README.txt").write_text(
        "Synthetic demo data generated by pcpeft.datasets.demo_shapes (procedural primitives). Not real scans.\n"
        f"classes: {', '.join(CLASSES)}\nseed: {seed}\n")
    import json

    settings_path = root / SETTINGS_FILE  # written last: a killed generation is regenerated next time
    tmp = settings_path.with_name(settings_path.name + ".tmp")
    tmp.write_text(json.dumps(generator_settings(train_per_class, test_per_class, seed), indent=2))
    os.replace(tmp, settings_path)
    return root
