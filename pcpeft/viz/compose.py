"""Laying rendered panels out on a grid with their titles, and writing PNGs of an exact size."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TITLE_HEIGHT = 20  # pixels above a panel for its title


@dataclass(frozen=True)
class Grid:
    """``count`` panels in ``columns`` x ``rows`` cells of a (W, H) picture; each panel is ``panel_size`` (w, h)
    below a title strip of ``title_height`` pixels."""

    count: int
    columns: int
    rows: int
    size: tuple[int, int]
    title_height: int

    @classmethod
    def for_panels(cls, count: int, columns: int, size: tuple[int, int], titled: bool) -> "Grid":
        columns = max(1, min(columns, count))
        rows = int(np.ceil(count / columns))
        grid = cls(count, columns, rows, tuple(size), TITLE_HEIGHT if titled else 0)
        if min(grid.panel_size) < 8:
            raise ValueError(f"{size[0]}x{size[1]} pixels is too small for {count} panels in {columns} columns")
        return grid

    @property
    def cell_size(self) -> tuple[int, int]:
        return self.size[0] // self.columns, self.size[1] // self.rows

    @property
    def panel_size(self) -> tuple[int, int]:
        width, height = self.cell_size
        return width, height - self.title_height


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def compose(grid: Grid, images: list[np.ndarray], titles: list[str]) -> np.ndarray:
    """One (H, W, 3) uint8 picture: each (h, w, 3) panel image in its cell, its title centred above it."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", grid.size, (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    cell_w, cell_h = grid.cell_size
    for index, (image, title) in enumerate(zip(images, titles)):
        left, top = (index % grid.columns) * cell_w, (index // grid.columns) * cell_h
        canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (left, top + grid.title_height))
        if title and grid.title_height:
            text_w = draw.textlength(title, font=font)
            draw.text((left + max(0.0, (cell_w - text_w) / 2), top + 3), title, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W, 3) uint8 image as PNG (folders created) and return the path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")
    return path


def new_figure(size: tuple[int, int]):
    """A white matplotlib figure of exactly ``size`` (W, H) pixels (at 100 dpi; Agg renders W x H exactly)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100, facecolor="white")


def figure_to_image(figure) -> np.ndarray:
    """A matplotlib figure drawn with Agg as an (H, W, 3) uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
