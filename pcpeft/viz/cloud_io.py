"""The point cloud file readers, for the pictures. They live in :mod:`pcpeft.datasets.point_files`, which the data
sets use as well; this module keeps the names the pictures (and older code) import from here."""
from __future__ import annotations

from ..datasets.point_files import (
                                    CLOUD_SUFFIXES,
                                    CloudFile,
                                    load_cloud,
                                    lzf_decompress,
                                    read_cloud,
                                    read_pcd_fields,
                                    read_ply_fields,
)

__all__ = ["CLOUD_SUFFIXES", "CloudFile", "load_cloud", "lzf_decompress", "read_cloud", "read_pcd_fields",
           "read_ply_fields"]
