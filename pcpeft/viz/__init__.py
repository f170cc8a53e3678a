"""Pictures of point clouds, FPS groups, class galleries, SMoA routing, t-SNE of features and training curves (PNG),
drawn by Open3D's offscreen renderer or matplotlib through one camera, and the same panels in an Open3D window."""
from __future__ import annotations

from .camera import Framing, View, project
from .cloud_io import CloudFile, load_cloud, read_cloud
from .colors import distinct_colors, point_colors
from .figures import (
                      cloud_panel,
                      fps_index,
                      gallery_panels,
                      groups_panel,
                      parts_panels,
                      read_scalars,
                      render_cloud,
                      render_curves,
                      render_gallery,
                      render_groups,
                      render_panels,
                      render_routing,
                      render_tsne,
                      routing_panels,
)
from .model_views import expert_choices, pooled_features
from .renderers import CloudPanel, MatplotlibRenderer, Open3DRenderer, PointLayer, choose_renderer, open3d_status

__all__ = ["CloudFile", "CloudPanel", "Framing", "MatplotlibRenderer", "Open3DRenderer", "PointLayer", "View",
           "choose_renderer", "cloud_panel", "distinct_colors", "expert_choices", "fps_index", "gallery_panels",
           "groups_panel", "load_cloud", "parts_panels", "open3d_status", "point_colors", "pooled_features", "project",
           "read_cloud",
           "read_scalars", "render_cloud", "render_curves", "render_gallery", "render_groups", "render_panels",
           "render_routing", "render_tsne", "routing_panels"]
