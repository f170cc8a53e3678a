"""One camera for every renderer: an orthographic view of a y-up cloud from an elevation and an azimuth, fitted to
the cloud's bounding sphere. The matplotlib renderer projects with it; the Open3D renderer is given the same
frustum, so both draw the same picture."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class View:
    """Where the camera looks from, in degrees: ``elevation`` above the x-z plane, ``azimuth`` around the y axis
    (0: from +x, -90: from +z; matplotlib's convention once y is drawn up). ``up`` is the cloud's up axis: 'y'
    (the ModelNet40/ScanObjectNN clouds) or 'z' (ModelNet's original .off meshes). ``margin`` > 1 leaves room
    around the cloud."""

    elevation: float = 20.0
    azimuth: float = -60.0
    up: str = "y"
    margin: float = 1.08

    def __post_init__(self) -> None:
        if self.up not in ("y", "z"):
            raise ValueError(f"up axis must be 'y' or 'z', got {self.up!r}")

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors (eye direction from the centre to the camera, screen right, screen up), each (3,)."""
        e, a = np.radians(self.elevation), np.radians(self.azimuth)
        eye = np.array([np.cos(e) * np.cos(a), np.sin(e), -np.cos(e) * np.sin(a)])
        world_up = np.array([0.0, 1.0, 0.0]) if abs(np.cos(e)) > 1e-6 else np.array([0.0, 0.0, -np.sign(np.sin(e))])
        right = np.cross(-eye, world_up)
        right /= np.linalg.norm(right)
        basis = eye, right, np.cross(right, -eye)
        if self.up == "z":  # the same picture of a z-up cloud: rotate y-up frame vectors (x, y, z) -> (x, -z, y)
            basis = tuple(np.array([v[0], -v[2], v[1]]) for v in basis)
        return basis


@dataclass(frozen=True)
class Framing:
    """The sphere a picture is fitted to: ``centre`` (3,) and ``radius``."""

    centre: np.ndarray
    radius: float

    @classmethod
    def of(cls, points: np.ndarray) -> "Framing":
        """Bounding-box centre and the largest distance from it, of (N, 3) points."""
        centre = (points.min(0) + points.max(0)) / 2
        radius = float(np.linalg.norm(points - centre, axis=1).max())
        return cls(centre.astype(np.float64), radius if radius > 0 else 1.0)

    def scale(self, view: View, size: tuple[int, int]) -> float:
        """Pixels per unit so that the sphere (times the margin) fits the smaller side of ``size`` (W, H)."""
        return min(size) / 2 / (self.radius * view.margin)


def project(points: np.ndarray, view: View, framing: Framing, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) (x right, y down, origin at the top-left corner) and depth (N,) (larger is nearer
    the camera) of (N, 3) points."""
    eye, right, up = view.basis()
    rel = points.astype(np.float64) - framing.centre
    scale = framing.scale(view, size)
    pixels = np.stack([size[0] / 2 + scale * rel @ right, size[1] / 2 - scale * rel @ up], axis=1)
    return pixels, rel @ eye
