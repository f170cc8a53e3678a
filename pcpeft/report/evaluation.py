"""The report's evaluation: the run's checkpoint on its test split, kept per sample (the gallery needs each
prediction), through the engine's own prediction code so that the numbers are those of ``pcpeft test``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..engine.recipe.schema import Settings
from ..engine.training.prediction import compute_metrics, predict
from ..engine.training.tasks import task_for


@dataclass
class ClassPredictions:
    """Per test sample: label, prediction and the softmax probability of the prediction; and the metrics of
    :func:`pcpeft.engine.training.prediction.compute_metrics` (accuracy, mean class accuracy, confusion matrix)."""

    labels: np.ndarray  # (N,) int
    predicted: np.ndarray  # (N,) int
    probability: np.ndarray  # (N,) float, of the predicted class
    metrics: dict

    @property
    def confusion(self) -> np.ndarray:
        return np.asarray(self.metrics["confusion_matrix"], dtype=np.int64)


@dataclass
class PartPredictions:
    """Per test shape: its category, predicted and true part labels (N,) and shape IoU (%); and the metrics of
    :class:`pcpeft.engine.training.partseg_metrics.PartSegMeter` (instance / class mIoU, per-category IoU)."""

    categories: np.ndarray  # (S,) int
    predicted: list[np.ndarray]
    truth: list[np.ndarray]
    shape_iou: np.ndarray  # (S,) percent
    metrics: dict


def classify(model: torch.nn.Module, settings: Settings, dataset: Dataset, device: torch.device) -> ClassPredictions:
    """One pass of the model over the test split, with the recipe's test transform (as ``pcpeft test``)."""
    task = task_for(settings)
    transform = task.transforms(torch.Generator())[1]
    logits, labels = predict(model, dataset, transform, device, settings.eval_batch_size)
    probabilities = torch.softmax(logits.float(), dim=1)
    confidence, predicted = probabilities.max(dim=1)
    return ClassPredictions(labels.numpy().astype(np.int64), predicted.numpy().astype(np.int64),
                            confidence.numpy().astype(np.float64), compute_metrics(logits, labels, task.num_classes))


@torch.no_grad()
def segment(model: torch.nn.Module, settings: Settings, dataset: Dataset, device: torch.device) -> PartPredictions:
    """One pass of the part-segmentation model over the test split; predictions restricted to each shape's own
    category's parts and scored as the official ShapeNetPart evaluation (``pcpeft test``'s numbers)."""
    from ..engine.training.partseg_metrics import PartSegMeter, restricted_prediction, shape_iou

    model.eval()
    meter = PartSegMeter(dataset.categories, dataset.category_parts)
    categories, predicted, truth, ious = [], [], [], []
    for points, category, parts in DataLoader(dataset, batch_size=settings.eval_batch_size, shuffle=False):
        log_probs = model(points[..., :3].to(device).contiguous(), category.to(device))
        batch_pred = restricted_prediction(log_probs.float().cpu(), category, dataset.category_parts)
        meter.update(batch_pred, parts, category)
        for shape_pred, shape_truth, shape_category in zip(batch_pred.numpy(), parts.numpy(),
                                                           category.reshape(-1).numpy()):
            categories.append(int(shape_category))
            predicted.append(shape_pred)
            truth.append(shape_truth)
            ious.append(100.0 * shape_iou(shape_pred, shape_truth, dataset.category_parts[int(shape_category)]))
    return PartPredictions(np.asarray(categories, dtype=np.int64), predicted, truth, np.asarray(ious),
                           meter.compute())


__all__ = ["ClassPredictions", "PartPredictions", "classify", "segment"]
