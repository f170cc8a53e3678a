"""Point cloud operators: farthest point sampling, kNN and grouping (backend choice lives in ``fps``)."""
from .fps import available_fps_backends, farthest_point_sample, fps_fpsample, fps_torch, resolve_fps_backend
from .grouping import PointGrouper, gather_points, group_points
from .knn import knn_indices

__all__ = [
    "available_fps_backends", "farthest_point_sample", "fps_fpsample", "fps_torch", "resolve_fps_backend",
    "PointGrouper", "gather_points", "group_points", "knn_indices",
]
