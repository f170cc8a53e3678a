"""Renderers draw a panel of coloured points to an RGB image through the shared camera (``camera.py``).

``open3d``: Open3D's offscreen renderer (Filament; on a machine without a GPU it runs on Mesa's software Vulkan
driver, from the Debian packages libvulkan1 and mesa-vulkan-drivers, and open3d itself needs libusb-1.0-0).
``matplotlib``: depth-sorted 2-D scatter of the projected points (headless Agg). ``choose_renderer('auto')`` takes
open3d when a probe render in a child process works (a broken graphics stack can abort a process, so the probe
never runs in this one), matplotlib otherwise, and logs the choice and why.
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .camera import Framing, View, project
from .compose import figure_to_image, new_figure

LOG = logging.getLogger("pcpeft")
RENDERERS = ("auto", "matplotlib", "open3d")
BACKGROUND = (1.0, 1.0, 1.0)


@dataclass
class PointLayer:
    """Points (N, 3), their colours (N, 3) in [0, 1] and the drawn point size in pixels."""

    points: np.ndarray
    colors: np.ndarray
    point_size: float = 3.0

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] < 3 or len(points) == 0:
            raise ValueError(f"a point layer needs (N, 3) points with N > 0, got shape {points.shape}")
        self.points = points[:, :3]
        self.colors = np.broadcast_to(np.asarray(self.colors, dtype=np.float64), self.points.shape).copy()


@dataclass
class CloudPanel:
    """One picture of points: layers drawn in one frame (later layers on equal footing, depth decides) and a title."""

    layers: list[PointLayer]
    title: str = ""
    framing: Framing = field(init=False)

    def __post_init__(self) -> None:
        self.framing = Framing.of(np.concatenate([layer.points for layer in self.layers]))


class Renderer(Protocol):
    name: str

    def draw(self, panel: CloudPanel, view: View, size: tuple[int, int]) -> np.ndarray:
        """The panel as an (H, W, 3) uint8 image of ``size`` (W, H)."""


class MatplotlibRenderer:
    """Projected points drawn far to near as round markers ``point_size`` pixels wide."""

    name = "matplotlib"

    def draw(self, panel: CloudPanel, view: View, size: tuple[int, int]) -> np.ndarray:
        figure = new_figure(size)
        ax = figure.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, size[0])
        ax.set_ylim(size[1], 0)
        ax.set_axis_off()
        pixels, depth, colors, sizes = [], [], [], []
        for layer in panel.layers:
            xy, d = project(layer.points, view, panel.framing, size)
            pixels.append(xy)
            depth.append(d)
            colors.append(layer.colors)
            sizes.append(np.full(len(xy), (layer.point_size * 72 / figure.dpi) ** 2))
        order = np.argsort(np.concatenate(depth), kind="stable")  # far first, near drawn on top
        xy = np.concatenate(pixels)[order]
        ax.scatter(xy[:, 0], xy[:, 1], s=np.concatenate(sizes)[order], c=np.concatenate(colors)[order],
                   linewidths=0, marker="o")
        return figure_to_image(figure)


@contextlib.contextmanager
def _quiet_stdout():
    """Filament prints its start-up banner to file descriptor 1; keep the tool's stdout clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class Open3DRenderer:
    """Open3D's offscreen renderer with an unlit point material, no post-processing (colours come out exactly as
    given) and the orthographic frustum of the shared camera."""

    name = "open3d"

    def __init__(self) -> None:
        import atexit

        import open3d

        open3d.utility.set_verbosity_level(open3d.utility.VerbosityLevel.Error)
        self._o3d = open3d
        self._renderer, self._size = None, None
        atexit.register(self.close)

    def _renderer_of_size(self, size: tuple[int, int]):
        """One live offscreen renderer at a time (Filament aborts when several are torn down at exit)."""
        if self._size != size:
            self.close()
            with _quiet_stdout():
                self._renderer = self._o3d.visualization.rendering.OffscreenRenderer(*size)
            self._renderer.scene.set_background([*BACKGROUND, 1.0])
            self._renderer.scene.view.set_post_processing(False)
            self._size = size
        return self._renderer

    def close(self) -> None:
        """Release the offscreen renderer (also done at exit)."""
        if self._renderer is not None:
            self._renderer.scene.clear_geometry()
            self._renderer, self._size = None, None

    def draw(self, panel: CloudPanel, view: View, size: tuple[int, int]) -> np.ndarray:
        o3d = self._o3d
        rendering = o3d.visualization.rendering
        renderer = self._renderer_of_size(tuple(size))
        scene = renderer.scene
        for i, layer in enumerate(panel.layers):
            points = layer.points
            if np.ptp(points, axis=0).max() == 0:  # Filament culls a zero-size bounding box: nudge a copy
                points = np.concatenate([points, points[:1] + 1e-6 * panel.framing.radius])
                colors = np.concatenate([layer.colors, layer.colors[:1]])
            else:
                colors = layer.colors
            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
            cloud.colors = o3d.utility.Vector3dVector(np.ascontiguousarray(colors))
            material = rendering.MaterialRecord()
            material.shader = "defaultUnlit"
            material.point_size = float(layer.point_size)
            scene.add_geometry(f"layer{i}", cloud, material)
        eye, _, up = view.basis()
        framing, scale = panel.framing, panel.framing.scale(view, size)
        half_w, half_h = size[0] / 2 / scale, size[1] / 2 / scale
        distance = 3 * framing.radius
        scene.camera.set_projection(rendering.Camera.Projection.Ortho, -half_w, half_w, -half_h, half_h,
                                    0.5 * framing.radius, 6 * framing.radius)
        scene.camera.look_at(framing.centre, framing.centre + distance * eye, up)
        with _quiet_stdout():
            image = np.asarray(renderer.render_to_image())
        scene.clear_geometry()  # Filament aborts the process if a renderer dies with materials still in use
        return np.ascontiguousarray(image[:, :, :3])


_PROBE = """
import sys, types
for name, folder in (("pcpeft", "{package}"), ("pcpeft.viz", "{package}/viz")):  # skip the heavy package imports
    module = types.ModuleType(name)
    module.__path__ = [folder]
    sys.modules[name] = module
import numpy as np
from pcpeft.viz.camera import View
from pcpeft.viz.renderers import CloudPanel, Open3DRenderer, PointLayer
points = np.random.default_rng(0).normal(0, 1, (50, 3))
image = Open3DRenderer().draw(CloudPanel([PointLayer(points, np.zeros(3), 6.0)]), View(), (48, 48))
print("PCPEFT_PROBE", int((image < 128).all(-1).sum()))
"""
_open3d_status: tuple[bool, str] | None = None


def open3d_status() -> tuple[bool, str]:
    """(works, reason): whether Open3D renders offscreen here, tried once per process in a child process."""
    global _open3d_status
    if _open3d_status is None:
        import importlib.util

        if importlib.util.find_spec("open3d") is None:
            _open3d_status = (False, "open3d is not installed")
        else:
            try:
                probe = _PROBE.replace("{package}", Path(__file__).resolve().parents[1].as_posix())
                result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180)
                line = next((ln for ln in result.stdout.splitlines() if ln.startswith("PCPEFT_PROBE")), "")
                drawn = line.split()[-1] if line else "0"
                if result.returncode == 0 and int(drawn) > 0:
                    _open3d_status = (True, "offscreen probe render worked")
                else:
                    errors = [ln for ln in result.stderr.splitlines() if ln.strip()]
                    why = errors[-1] if errors else f"probe exited {result.returncode} and drew {drawn} pixels"
                    _open3d_status = (False, f"offscreen rendering failed: {why}")
            except subprocess.TimeoutExpired:
                _open3d_status = (False, "offscreen rendering probe timed out")
    return _open3d_status


_made: dict[str, Renderer] = {}


def choose_renderer(requested: str = "auto") -> Renderer:
    """The renderer for ``requested`` ('auto', 'matplotlib' or 'open3d'); the choice and its reason are logged.

    'open3d' raises RuntimeError saying why when Open3D cannot render offscreen here."""
    if not isinstance(requested, str) or requested not in RENDERERS:
        raise ValueError(f"unknown renderer {requested!r}; choose one of {', '.join(RENDERERS)}")
    if requested == "matplotlib":
        name, why = "matplotlib", "requested"
    else:
        works, why = open3d_status()
        if requested == "open3d" and not works:
            raise RuntimeError(f"renderer open3d requested but unusable: {why}. tools/setup.sh installs open3d and "
                               f"the system packages it needs (libusb-1.0-0, libvulkan1, mesa-vulkan-drivers)")
        name = "open3d" if works else "matplotlib"
        why = why if works else f"open3d unusable: {why}"
    LOG.info(f"renderer: {name} ({why})")
    if name not in _made:
        _made[name] = Open3DRenderer() if name == "open3d" else MatplotlibRenderer()
    return _made[name]


def resolve_renderer(renderer: "str | Renderer") -> Renderer:
    """A renderer object from a name ('auto', 'matplotlib', 'open3d') or a renderer itself."""
    return choose_renderer(renderer) if isinstance(renderer, str) else renderer
