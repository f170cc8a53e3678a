"""Part-segmentation metrics as the reference ShapeNetPart evaluation (Point-MAE ``segmentation/main.py``).

* Prediction: the argmax over the shape's own category's parts only (:func:`restricted_prediction`).
* Shape IoU: the mean over the parts of the shape's category of |pred = l and target = l| / |pred = l or
  target = l|; a part absent from both the prediction and the ground truth counts 1.
* ``instance_miou``: the mean shape IoU over all shapes; ``class_miou``: the mean over categories of the mean shape
  IoU of the category (categories without shapes are left out and listed in ``categories_without_shapes``).
* ``accuracy``: the fraction of points labelled right; ``class_avg_accuracy``: the mean over the parts that occur in
  the ground truth of (points of the part labelled right / points of the part).

Every value :meth:`PartSegMeter.compute` returns is in PERCENT (x100), except the ``shapes`` count.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def category_part_mask(category_parts: Sequence[Sequence[int]], num_parts: int) -> torch.Tensor:
    """(C, P) bool: ``mask[c, p]`` is true when global part ``p`` belongs to category ``c``."""
    mask = torch.zeros(len(category_parts), num_parts, dtype=torch.bool)
    for category, parts in enumerate(category_parts):
        if max(parts) >= num_parts:
            raise ValueError(f"category {category} has part {max(parts)}, but the scores cover {num_parts} parts")
        mask[category, list(parts)] = True
    return mask


def restricted_prediction(log_probs: torch.Tensor, categories: torch.Tensor,
                          category_parts: Sequence[Sequence[int]]) -> torch.Tensor:
    """log_probs (B, N, P) part scores, categories (B,) -> (B, N) int64 global part ids, each the best-scoring part
    of the shape's own category (parts of other categories are never chosen)."""
    mask = category_part_mask(category_parts, log_probs.shape[-1]).to(log_probs.device)
    allowed = mask[categories.long()][:, None, :]  # (B, 1, P)
    return log_probs.masked_fill(~allowed, float("-inf")).argmax(dim=-1)


def shape_iou(pred: np.ndarray, target: np.ndarray, parts: Sequence[int]) -> float:
    """pred, target (N,) global part ids of one shape -> the mean IoU over ``parts`` (absent from both: 1)."""
    parts = np.asarray(parts)
    in_pred, in_target = pred[:, None] == parts, target[:, None] == parts  # (N, K)
    intersection = (in_pred & in_target).sum(axis=0)
    union = (in_pred | in_target).sum(axis=0)
    return float(np.where(union == 0, 1.0, intersection / np.maximum(union, 1)).mean())


def _as_numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values).astype(np.int64)


class PartSegMeter:
    """Accumulates predictions batch by batch; :meth:`compute` gives the reference metrics in percent.

    Args:
        category_names: names by category index.
        category_parts: global part ids by category index (e.g. ``ShapeNetPart.category_parts``).
    """

    def __init__(self, category_names: Sequence[str], category_parts: Sequence[Sequence[int]]) -> None:
        if len(category_names) != len(category_parts):
            raise ValueError(f"{len(category_names)} category names for {len(category_parts)} part lists")
        self.category_names = list(category_names)
        self.category_parts = [list(parts) for parts in category_parts]
        self.num_parts = 1 + max(max(parts) for parts in self.category_parts)
        self.shape_ious: list[list[float]] = [[] for _ in self.category_names]
        self.correct = self.seen = 0
        self.part_correct = np.zeros(self.num_parts, dtype=np.int64)
        self.part_seen = np.zeros(self.num_parts, dtype=np.int64)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray,
               categories: torch.Tensor | np.ndarray) -> None:
        """pred, target (B, N) global part ids; categories (B,) category indices."""
        pred, target, categories = _as_numpy(pred), _as_numpy(target), _as_numpy(categories).reshape(-1)
        if pred.shape != target.shape or pred.ndim != 2 or len(categories) != len(target):
            raise ValueError(f"pred {pred.shape} and target {target.shape} must both be (B, N) and categories "
                             f"{categories.shape} (B,)")
        for shape_pred, shape_target, category in zip(pred, target, categories):
            parts = self.category_parts[category]
            if not np.isin(shape_target, parts).all():
                raise ValueError(f"a target label is not a part of category {self.category_names[category]!r} "
                                 f"(its parts: {parts})")
            self.shape_ious[category].append(shape_iou(shape_pred, shape_target, parts))
        hit = pred == target
        self.correct += int(hit.sum())
        self.seen += target.size
        self.part_seen += np.bincount(target.reshape(-1), minlength=self.num_parts)
        self.part_correct += np.bincount(target[hit], minlength=self.num_parts)

    def compute(self) -> dict:
        """{'instance_miou', 'class_miou', 'per_category_iou': {name: value}, 'categories_without_shapes': [names],
        'accuracy', 'class_avg_accuracy', 'shapes'}; every value but 'shapes' is in percent."""
        all_ious = [iou for ious in self.shape_ious for iou in ious]
        if not all_ious:
            raise ValueError("PartSegMeter.compute: no shapes were added")
        per_category = {name: 100.0 * float(np.mean(ious))
                        for name, ious in zip(self.category_names, self.shape_ious) if ious}
        seen = self.part_seen > 0
        return {
            "instance_miou": 100.0 * float(np.mean(all_ious)),
            "class_miou": float(np.mean(list(per_category.values()))),
            "per_category_iou": per_category,
            "categories_without_shapes": [name for name, ious in zip(self.category_names, self.shape_ious)
                                          if not ious],
            "accuracy": 100.0 * self.correct / self.seen,
            "class_avg_accuracy": 100.0 * float(np.mean(self.part_correct[seen] / self.part_seen[seen])),
            "shapes": len(all_ious),
        }
