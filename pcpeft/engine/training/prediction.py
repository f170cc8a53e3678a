"""Test-time prediction (one pass or voting) and the metrics every result reports."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ...datasets.transforms import ScaleAndTranslate, oversample_size
from ...ops.fps import farthest_point_sample
from ...ops.grouping import gather_points
from .distributed import gather_ordered, shard_indices


def _loader(dataset: Dataset, indices: list[int], batch_size: int, workers: int) -> DataLoader:
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=workers)


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, transform: Callable[[torch.Tensor], torch.Tensor],
            device: torch.device, batch_size: int = 32, workers: int = 0, rank: int = 0, world: int = 1,
            progress: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) and labels (N,) for the whole dataset, in dataset order (sharded exactly across ranks)."""
    indices = shard_indices(len(dataset), rank, world)
    logits, labels = [], []
    model.eval()
    batches = _loader(dataset, indices, batch_size, workers)
    for points, label in (progress(batches) if progress else batches):
        logits.append(model(transform(points.to(device))).float().cpu())
        labels.append(label)
    logits_t = torch.cat(logits) if logits else torch.zeros(0, 0)
    labels_t = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long)
    return gather_ordered(logits_t, indices, len(dataset)), gather_ordered(labels_t, indices, len(dataset))


@torch.no_grad()
def predict_vote(model: nn.Module, dataset: Dataset, npoints: int, device: torch.device, times: int = 10,
                 batch_size: int = 32, seed: int = 0, workers: int = 0, rank: int = 0, world: int = 1,
                 progress: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Voting: mean logits over ``times`` re-samples, each a random ``npoints`` subset of the FPS oversample
    (``oversample_size``, capped at the cloud size, so 2048-point ScanObjectNN works) followed by
    scale-and-translate, as Point-MAE's ``test_vote``."""
    generator = torch.Generator().manual_seed(seed)
    augment = ScaleAndTranslate(generator=generator)
    indices = shard_indices(len(dataset), rank, world)
    logits, labels = [], []
    model.eval()
    batches = _loader(dataset, indices, batch_size, workers)
    for points, label in (progress(batches) if progress else batches):
        points = points.to(device)
        point_all = oversample_size(npoints, points.shape[1])
        if point_all < npoints:
            raise ValueError(f"voting needs clouds of at least {npoints} points, got {points.shape[1]}")
        fps_idx = farthest_point_sample(points[..., :3].contiguous(), point_all)
        total = 0
        for _ in range(times):
            choice = torch.randperm(point_all, generator=generator)[:npoints].to(fps_idx.device)
            total = total + model(augment(gather_points(points, fps_idx[:, choice]))).float()
        logits.append((total / times).cpu())
        labels.append(label)
    return (gather_ordered(torch.cat(logits), indices, len(dataset)),
            gather_ordered(torch.cat(labels), indices, len(dataset)))


def compute_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """Overall accuracy (%), mean class accuracy (% over classes present) and the confusion matrix
    (rows = true class, columns = prediction)."""
    pred = logits.argmax(dim=1).numpy()
    true = labels.numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    present = confusion.sum(axis=1) > 0
    per_class = np.diag(confusion)[present] / confusion.sum(axis=1)[present]
    return {
        "overall_acc": float(100.0 * (pred == true).mean()) if len(true) else 0.0,
        "mean_class_acc": float(100.0 * per_class.mean()) if present.any() else 0.0,
        "samples": int(len(true)),
        "confusion_matrix": confusion.tolist(),
    }
