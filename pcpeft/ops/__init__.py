"""Point cloud operators: farthest point sampling, kNN and grouping (backend choice lives in ``fps`` / ``knn``)."""
from .fps import available_fps_backends, farthest_point_sample, fps_fpsample, fps_numba, fps_torch, resolve_fps_backend
from .grouping import PointGrouper, gather_points, group_points
from .knn import available_knn_backends, knn_indices, knn_numba, knn_torch

__all__ = [
    "available_fps_backends", "farthest_point_sample", "fps_fpsample", "fps_numba", "fps_torch",
    "resolve_fps_backend", "PointGrouper", "gather_points", "group_points", "available_knn_backends",
    "knn_indices", "knn_numba", "knn_torch",
]
