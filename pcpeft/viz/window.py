"""``--interactive``: the same panels in an Open3D window (rotate, zoom, 'P' saves a screenshot), laid out on a grid
facing the same camera as the PNG. 2-D pictures (t-SNE, curves) are shown as an image in the window."""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from .camera import View
from .renderers import CloudPanel

LOG = logging.getLogger("pcpeft")


def display_available() -> bool:
    """Whether a window can be opened (an X11 or Wayland display is set)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def interactive_unavailable_reason() -> str | None:
    """Why no window can be opened here, or None when it can."""
    if not display_available():
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    import importlib.util

    if importlib.util.find_spec("open3d") is None:
        return "open3d is not installed (tools/setup.sh installs it)"
    return None


def panel_geometries(panels: list[CloudPanel], view: View, columns: int = 4):
    """Open3D point clouds of every layer of every panel, each panel scaled to a unit sphere and placed on a grid
    across the screen (right/up of the view), so the window shows what the PNG shows."""
    import open3d as o3d

    _, right, up = view.basis()
    geometries = []
    for index, panel in enumerate(panels):
        offset = 2.4 * ((index % columns) * right - (index // columns) * up)
        for layer in panel.layers:
            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(
                (layer.points - panel.framing.centre) / panel.framing.radius + offset))
            cloud.colors = o3d.utility.Vector3dVector(np.ascontiguousarray(layer.colors))
            geometries.append(cloud)
    return geometries


def show_window(geometries, title: str, size: tuple[int, int], view: View | None = None, point_size: float = 3.0,
                seconds: float | None = None) -> np.ndarray | None:
    """Open an Open3D window with ``geometries`` until it is closed (or ``seconds`` pass); the last frame as an
    (H, W, 3) float array in [0, 1], or None when the window could not be created."""
    import open3d as o3d

    vis = o3d.visualization.Visualizer()
    if not vis.create_window(window_name=title, width=size[0], height=size[1]):
        LOG.warning("--interactive: Open3D could not create a window on this display; the PNG is written")
        return None
    for geometry in geometries:
        vis.add_geometry(geometry)
    option = vis.get_render_option()
    option.background_color = np.ones(3)
    option.point_size = point_size
    if view is not None:
        eye, _, up = view.basis()
        control = vis.get_view_control()
        control.set_front(eye)
        control.set_up(up)
    LOG.info(f"--interactive: window '{title}' open" + (f" for {seconds:g} s" if seconds is not None else
                                                        "; close it to finish"))
    start = time.monotonic()
    while vis.poll_events():
        vis.update_renderer()
        if seconds is not None and time.monotonic() - start >= seconds:
            break
        time.sleep(0.01)
    frame = np.asarray(vis.capture_screen_float_buffer(do_render=True))
    vis.destroy_window()
    return frame


def show_panels(panels: list[CloudPanel], title: str, size: tuple[int, int], view: View = View(), columns: int = 4,
                seconds: float | None = None) -> np.ndarray | None:
    """The panels of a 3-D picture in a window (see ``show_window``)."""
    point_size = max(layer.point_size for layer in panels[0].layers)
    return show_window(panel_geometries(panels, view, columns), title, size, view, point_size, seconds)


def show_image(image: np.ndarray, title: str, seconds: float | None = None) -> np.ndarray | None:
    """An (H, W, 3) uint8 picture in a window (see ``show_window``)."""
    import open3d as o3d

    height, width = image.shape[:2]
    return show_window([o3d.geometry.Image(np.ascontiguousarray(image))], title, (width, height), None, 1.0, seconds)
