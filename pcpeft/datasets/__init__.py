"""Datasets in their real file formats, the synthetic demo sets, transforms, and ModelNet mesh preparation.

Errors: :class:`DatasetFileNotFoundError` (a missing file; also a ``FileNotFoundError``) and
:class:`DatasetError` (wrong keys, shapes, lengths or values); both name the file.
"""
from .demo_parts import ensure_parts_dataset
from .demo_shapes import CLASSES as DEMO_CLASSES
from .demo_shapes import write_demo_dataset
from .errors import DatasetError, DatasetFileNotFoundError
from .modelnet import ModelNet40, ModelNetFewShot, normalize_unit_sphere
from .scanobjectnn import ScanObjectNN
from .shapenet_part import SHAPENET_PART_CATEGORIES, ShapeNetPart, parts_by_category_index
from .transforms import Compose, FPSResample, Jitter, RandomSubsetOfFPS, RotateAboutUpAxis, ScaleAndTranslate

__all__ = [
    "DEMO_CLASSES", "write_demo_dataset", "DatasetError", "DatasetFileNotFoundError", "ModelNet40",
    "ModelNetFewShot", "normalize_unit_sphere", "ScanObjectNN", "Compose", "FPSResample", "Jitter",
    "RandomSubsetOfFPS", "RotateAboutUpAxis", "ScaleAndTranslate", "ShapeNetPart", "SHAPENET_PART_CATEGORIES",
    "parts_by_category_index", "ensure_parts_dataset",
]
