"""Dataset errors: every message names the file and what is wrong with it."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError

DATA_README = "datasets/README.md"


class DatasetError(UserError, ValueError):
    """A data file exists but its content is wrong (keys, shapes, lengths, values)."""


class DatasetFileNotFoundError(DatasetError, FileNotFoundError):
    """An expected data file is missing."""


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise naming the expected location and the data README."""
    if not path.is_file():
        raise DatasetFileNotFoundError(
            f"{what}: expected file {path} is missing. See {DATA_README} for the folder layout and where to obtain "
            f"the data."
        )
    return path
