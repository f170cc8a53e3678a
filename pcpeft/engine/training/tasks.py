"""What a task means to the trainer: its batches, loss, predictions and metrics.

The trainer knows nothing about classification or segmentation; it calls the recipe's task (``task:`` in the
recipe, :func:`task_for`):

* ``train_transform`` / ``eval_transform``: the batch transforms (augmentation);
* ``training_loss(model, batch, transform, device)`` -> :class:`StepResult` (loss, correct, seen);
* ``evaluate(model, dataset, transform, device, ...)`` -> a metrics dict whose ``task.score`` entry chooses the
  best epoch, and ``summary(metrics, prefix)`` -> the few numbers an epoch's log line and TensorBoard get;
* ``test(model, settings, device, vote, times, seed)`` -> the test-split metrics of ``tools/test.py``.

``classification``: batches (points (B, N, 3), labels (B,)), cross-entropy with Point-BERT's label smoothing,
accuracy and mean class accuracy, voting. ``partseg``: batches (points (B, N, 3), categories (B,), parts
(B, N)), NLL of the model's log-probabilities, the official ShapeNetPart evaluation (predictions restricted to
the category's parts; instance / class mIoU, per-category IoU).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..recipe.yaml_io import ConfigError
from .distributed import gather_ordered, shard_indices
from .prediction import compute_metrics, predict, predict_vote


@dataclass
class StepResult:
    loss: torch.Tensor  # the task loss (the trainer adds the methods' auxiliary losses)
    correct: int  # correctly predicted samples (classification) or points (segmentation)
    seen: int


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """Point-BERT's label smoothing: 1-eps on the target, eps/(C-1) elsewhere (eps=0: plain cross-entropy)."""
    if eps <= 0:
        return F.cross_entropy(logits, target)
    one_hot = torch.zeros_like(logits).scatter(1, target.view(-1, 1), 1)
    soft = one_hot * (1 - eps) + (1 - one_hot) * eps / (logits.shape[1] - 1)
    return -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class ClassificationTask:
    """One label per cloud (ModelNet40, ScanObjectNN, the demo set, a folder of scans, images)."""

    name = "classification"
    score = "overall_acc"
    val_score = "val_acc"  # the validation score's key in an epoch's metrics (chooses the best epoch)

    def __init__(self, settings) -> None:
        self.settings = settings
        self.num_classes = settings.num_classes
        self.label_smoothing = settings.train.label_smoothing

    def transforms(self, generator: torch.Generator) -> tuple[Callable, Callable]:
        from ..data import batch_transforms

        return batch_transforms(self.settings, generator)

    def check_data(self, model: nn.Module, train_set: Dataset) -> None:
        """Nothing beyond the class-folder count (checked with the data set's record)."""

    def describe_augmentation(self) -> str:
        from ..data import describe_augmentation

        augmentation = self.settings.augmentation
        if self.settings.modality == "images":
            return "hflip" if augmentation.hflip else "none"
        return describe_augmentation(augmentation)

    def training_loss(self, model: nn.Module, batch, transform: Callable, device: torch.device) -> StepResult:
        points, labels = batch
        points, labels = transform(points.to(device)), labels.to(device)
        logits = model(points)
        loss = smoothed_cross_entropy(logits.float(), labels, self.label_smoothing)
        return StepResult(loss, int((logits.argmax(1) == labels).sum()), len(labels))

    def evaluate(self, model: nn.Module, dataset: Dataset, transform: Callable, device: torch.device,
                 batch_size: int, workers: int = 0, rank: int = 0, world: int = 1) -> dict:
        logits, labels = predict(model, dataset, transform, device, batch_size, workers, rank, world)
        return compute_metrics(logits, labels, self.num_classes)

    @staticmethod
    def summary(metrics: dict, prefix: str) -> dict:
        if prefix == "val":
            return {"val_acc": metrics["overall_acc"]}
        return {f"{prefix}_acc": metrics["overall_acc"], f"{prefix}_mean_class_acc": metrics["mean_class_acc"]}

    def test(self, model: nn.Module, test_set: Dataset, device: torch.device, vote: bool, times: int, seed: int,
             rank: int, world: int) -> dict:
        batch = self.settings.eval_batch_size
        if vote:
            if self.settings.modality == "images":
                raise ConfigError("voting re-samples point clouds; it does not apply to image datasets")
            npoints = self.settings.dataset.npoints
            logits, labels = predict_vote(model, test_set, npoints, device, times, batch, seed, rank=rank,
                                          world=world)
            return compute_metrics(logits, labels, self.num_classes)
        return self.evaluate(model, test_set, self.transforms(torch.Generator())[1], device, batch, 0, rank, world)


class PartSegAugment:
    """The official ShapeNetPart training augmentation (``provider.random_scale_point_cloud`` then
    ``shift_point_cloud``): each cloud scaled by one factor in U(0.8, 1.25), then shifted by U(-0.1, 0.1) per axis.
    Points keep their order (their labels stay aligned). (B, N, 3) -> (B, N, 3)."""

    def __init__(self, generator: torch.Generator, scale: tuple[float, float] = (0.8, 1.25),
                 shift: float = 0.1) -> None:
        self.generator, self.scale, self.shift = generator, scale, shift

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        batch = points.shape[0]
        low, high = self.scale
        factor = torch.rand(batch, 1, 1, generator=self.generator) * (high - low) + low
        offset = (torch.rand(batch, 1, 3, generator=self.generator) * 2 - 1) * self.shift
        return points * factor.to(points) + offset.to(points)


def _underlying(dataset: Dataset) -> Dataset:
    """The data set beneath any Subset (a validation split): where the category / part lists live."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


def _identity(points: torch.Tensor) -> torch.Tensor:
    return points


class PartSegTask:
    """Part segmentation (ShapeNetPart and the synthetic parts set): a part label per point, the category given."""

    name = "partseg"
    score = "instance_miou"
    val_score = "val_instance_miou"
    num_classes = None  # no class count to check against the data

    def __init__(self, settings) -> None:
        self.settings = settings

    def transforms(self, generator: torch.Generator) -> tuple[Callable, Callable]:
        augment = self.settings.augmentation.scale_translate
        return (PartSegAugment(generator) if augment else _identity), _identity

    def check_data(self, model: nn.Module, train_set: Dataset) -> None:
        """The data's categories and parts fit the model (the counts are fixed by the model's head)."""
        if self.settings.dataset.normal_channel:
            raise ConfigError("dataset.normal_channel: true, but the Point-MAE segmentation network reads xyz only "
                              "(the official default); the normals would be ignored - set it to false")
        base = _underlying(train_set)
        net = getattr(model, "base_model", model)
        if base.num_categories != net.num_categories or base.num_parts > net.num_parts:
            raise ConfigError(f"{self.settings.dataset.root} has {base.num_categories} categories and "
                              f"{base.num_parts} parts, but the model was built for model.num_categories = "
                              f"{net.num_categories} and model.num_parts = {net.num_parts}: set them to the data's")

    def describe_augmentation(self) -> str:
        return "scale[0.8,1.25]+shift[0.1]" if self.settings.augmentation.scale_translate else "none"

    def training_loss(self, model: nn.Module, batch, transform: Callable, device: torch.device) -> StepResult:
        points, categories, parts = (t.to(device) for t in batch)
        log_probs = model(transform(points[..., :3].contiguous()), categories)
        loss = F.nll_loss(log_probs.float().reshape(-1, log_probs.shape[-1]), parts.reshape(-1))
        return StepResult(loss, int((log_probs.argmax(-1) == parts).sum()), parts.numel())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, dataset: Dataset, transform: Callable, device: torch.device,
                 batch_size: int, workers: int = 0, rank: int = 0, world: int = 1) -> dict:
        from .partseg_metrics import PartSegMeter, restricted_prediction

        base = _underlying(dataset)
        indices = shard_indices(len(dataset), rank, world)
        model.eval()
        preds, targets, cats = [], [], []
        for points, categories, parts in DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                                                    num_workers=workers):
            log_probs = model(transform(points[..., :3].to(device).contiguous()), categories.to(device))
            preds.append(restricted_prediction(log_probs.float().cpu(), categories, base.category_parts))
            targets.append(parts)
            cats.append(categories)
        meter = PartSegMeter(base.categories, base.category_parts)
        meter.update(*(gather_ordered(torch.cat(t), indices, len(dataset)) for t in (preds, targets, cats)))
        return meter.compute()

    @staticmethod
    def summary(metrics: dict, prefix: str) -> dict:
        return {f"{prefix}_instance_miou": metrics["instance_miou"], f"{prefix}_class_miou": metrics["class_miou"]}

    def test(self, model: nn.Module, test_set: Dataset, device: torch.device, vote: bool, times: int, seed: int,
             rank: int, world: int) -> dict:
        if vote:
            raise ConfigError("--vote re-samples clouds for classification; part segmentation is evaluated in one "
                              "pass, as the official ShapeNetPart evaluation")
        return self.evaluate(model, test_set, _identity, device, self.settings.eval_batch_size, 0, rank, world)


TASKS = {"classification": ClassificationTask, "partseg": PartSegTask}


def task_for(settings) -> ClassificationTask | PartSegTask:
    """The task object of a validated recipe (``task:``, default classification)."""
    return TASKS[settings.task](settings)
