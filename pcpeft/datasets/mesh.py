"""Princeton OFF meshes: reading (both header variants) and area-weighted surface sampling with normals.

Implemented with numpy rather than Open3D: Open3D's OFF reader does not accept the ``OFF<nv> <nf> <ne>`` header
that some ModelNet files have, and its sampler draws from a process-wide seed, while preparation must be
deterministic per file (so an interrupted run resumes to identical output).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DatasetError, require_file


def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh. Returns vertices (V, 3) float64 and triangles (F, 3) int64 (polygons fan-triangulated).

    Accepts the standard header (``OFF`` then ``nv nf ne`` on the next line) and the variant with the counts on
    the first line (``OFF1234 5678 0``); ``#`` comments and blank lines are skipped.
    """
    path = require_file(Path(path), "OFF mesh")
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].startswith("OFF"):
        raise DatasetError(f"{path}: not an OFF file (first line {lines[0][:40]!r} does not start with 'OFF')"
                           if lines else f"{path}: empty file")
    rest = lines[0][3:].strip()
    counts_line, body_start = (rest, 1) if rest else (lines[1] if len(lines) > 1 else "", 2)
    n_vertices, n_faces = _off_counts(counts_line, path)
    body = lines[body_start:]
    if len(body) < n_vertices + n_faces:
        raise DatasetError(f"{path}: header announces {n_vertices} vertices and {n_faces} faces but the file has "
                           f"only {len(body)} data lines")
    rows = [ln.split()[:3] for ln in body[:n_vertices]]
    try:
        vertices = np.array(rows, dtype=np.float64).reshape(n_vertices, 3)
    except ValueError:  # a row of fewer than 3 values, or one that is not numbers
        bad = next((i for i, row in enumerate(rows) if not _floats(row)), 0)
        raise DatasetError(f"{path}: vertex line {bad + 1} ({' '.join(rows[bad])[:60]!r}) is not 3 numbers x y z") \
            from None
    triangles = []
    for number, ln in enumerate(body[n_vertices:n_vertices + n_faces]):
        triangles += _fan(ln, n_vertices, path, number)
    return vertices, np.array(triangles, dtype=np.int64).reshape(-1, 3)


def _off_counts(counts_line: str, path: Path) -> tuple[int, int]:
    """The vertex and face counts of an OFF counts line ('vertices faces edges'), both non-negative integers."""
    try:
        n_vertices, n_faces = (int(v) for v in counts_line.split()[:2])
    except ValueError:
        raise DatasetError(f"{path}: bad OFF counts line {counts_line[:60]!r}; expected 'vertices faces edges'") \
            from None
    if n_vertices < 0 or n_faces < 0:
        raise DatasetError(f"{path}: negative OFF counts {n_vertices} vertices and {n_faces} faces")
    return n_vertices, n_faces


def _floats(tokens: list[str]) -> bool:
    """Whether ``tokens`` are 3 numbers."""
    try:
        return len([float(t) for t in tokens]) == 3
    except ValueError:
        return False


def _fan(line: str, n_vertices: int, path: Path, number: int) -> list[tuple[int, int, int]]:
    """The fan triangles of one face line ('count i0 i1 ...', anything after the indices ignored); every index of
    a face of 3 or more vertices must name one of the vertices."""
    values = line.split()
    try:
        count = int(values[0])
        idx = [int(v) for v in values[1:1 + count]] if count > 0 else []
    except ValueError:
        raise DatasetError(f"{path}: face line {number + 1} ({line[:60]!r}) is not integers") from None
    if len(idx) < count:
        raise DatasetError(f"{path}: face line {number + 1} announces {count} vertices but lists {len(idx)}")
    if count >= 3 and any(not 0 <= i < n_vertices for i in idx):
        raise DatasetError(f"{path}: face line {number + 1}: face indices outside the {n_vertices} vertices")
    return [(idx[0], idx[k], idx[k + 1]) for k in range(1, count - 1)]


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator,
                   source: str = "mesh") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on the mesh surface.

    Returns points (count, 3), unit normals of their triangles (count, 3) and the triangle index of each (count,).
    """
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    with np.errstate(over="ignore", invalid="ignore"):  # huge or NaN coordinates are refused just below
        cross = np.cross(b - a, c - a)
        double_area = np.linalg.norm(cross, axis=1)
        total = double_area.sum()
    if not np.isfinite(double_area).all() or not np.isfinite(total):
        raise DatasetError(f"{source}: the mesh has NaN/inf coordinates or triangles too large to measure")
    if total <= 0:
        raise DatasetError(f"{source}: the mesh has no triangle with a positive area")
    tri = rng.choice(len(faces), size=count, p=double_area / total)
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    w_a, w_b, w_c = 1 - s, s * (1 - r2), s * r2
    points = w_a[:, None] * a[tri] + w_b[:, None] * b[tri] + w_c[:, None] * c[tri]
    normals = cross[tri] / double_area[tri, None]
    return points, normals, tri
