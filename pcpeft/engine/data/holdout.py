"""A validation split carved from the training data, so that no choice (best epoch, learning rate) is ever made
on the test split.

``dataset.val_fraction: 0.2`` holds out that fraction of *each class* of the training split (at least one
sample per class), chosen by ``dataset.val_seed``. The held-out samples are read without the training-time point
shuffling; the rest stays the training set. The two index sets are disjoint by construction and recorded in
``results.json``.
"""
from __future__ import annotations

import copy

import numpy as np
from torch.utils.data import Dataset, Subset

from ...datasets.errors import DatasetError


class TrainingSubset(Subset):
    """A ``Subset`` that forwards ``set_epoch`` (per-epoch point shuffling) to the underlying data set."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def dataset_labels(dataset: Dataset) -> np.ndarray:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [dataset[i][1] for i in range(len(dataset))]
    return np.asarray(labels).reshape(-1)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices, held-out indices), sorted; ``fraction`` of each class held out (at least 1, at most all
    but one of the class)."""
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            raise DatasetError(f"class {int(cls)} has {len(members)} training sample(s): a validation split needs at "
                               f"least 2 per class (lower dataset.val_fraction to 0 to train without one)")
        count = min(len(members) - 1, max(1, int(round(fraction * len(members)))))
        held.append(rng.choice(members, size=count, replace=False))
    held_out = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(labels)), held_out)
    return kept, held_out


def split_train_val(train_set: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """(training subset, validation subset) of ``train_set``; (train_set, None) when ``fraction`` is 0."""
    if fraction <= 0:
        return train_set, None
    kept, held_out = stratified_holdout(dataset_labels(train_set), fraction, seed)
    val_base = copy.copy(train_set)
    if hasattr(val_base, "shuffle_points"):
        val_base.shuffle_points = False  # evaluation reads clouds as stored, like the test split
    return TrainingSubset(train_set, kept.tolist()), Subset(val_base, held_out.tolist())
