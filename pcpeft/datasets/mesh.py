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
    try:
        n_vertices, n_faces = (int(v) for v in counts_line.split()[:2])
    except ValueError:
        raise DatasetError(f"{path}: bad OFF counts line {counts_line!r}; expected 'vertices faces edges'") from None
    body = lines[body_start:]
    if len(body) < n_vertices + n_faces:
        raise DatasetError(f"{path}: header announces {n_vertices} vertices and {n_faces} faces but the file has "
                           f"only {len(body)} data lines")
    try:
        vertices = np.array([ln.split()[:3] for ln in body[:n_vertices]], dtype=np.float64)
        triangles = []
        for ln in body[n_vertices:n_vertices + n_faces]:
            values = ln.split()
            count = int(values[0])
            idx = [int(v) for v in values[1:1 + count]]
            triangles += [(idx[0], idx[k], idx[k + 1]) for k in range(1, count - 1)]
    except (ValueError, IndexError) as err:
        raise DatasetError(f"{path}: malformed vertex or face line ({err})") from None
    faces = np.array(triangles, dtype=np.int64).reshape(-1, 3)
    if vertices.shape != (n_vertices, 3) or (faces.size and (faces.min() < 0 or faces.max() >= n_vertices)):
        raise DatasetError(f"{path}: face indices outside the {n_vertices} vertices or bad vertex rows")
    return vertices, faces


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator,
                   source: str = "mesh") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-weighted uniform samples on the mesh surface.

    Returns points (count, 3), unit normals of their triangles (count, 3) and the triangle index of each (count,).
    """
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    if not np.isfinite(double_area).all() or double_area.sum() <= 0:
        raise DatasetError(f"{source}: the mesh has no triangle with a positive area")
    tri = rng.choice(len(faces), size=count, p=double_area / double_area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)
    w_a, w_b, w_c = 1 - s, s * (1 - r2), s * r2
    points = w_a[:, None] * a[tri] + w_b[:, None] * b[tri] + w_c[:, None] * c[tri]
    normals = cross[tri] / double_area[tri, None]
    return points, normals, tri
