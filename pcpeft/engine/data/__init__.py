"""Data for a run: the data-set registry (:mod:`.registry`) with the built-in point, part and image data sets, batch
augmentation (:mod:`.augmentation`), the checks of data against a recipe and a model (:mod:`.checks`), validation
splits carved from the training data (:mod:`.holdout`) and the run's record of its data (:mod:`.records`)."""
from __future__ import annotations

from .augmentation import batch_transforms, describe_augmentation, test_transform, train_transform
from .records import dataset_record
from .registry import (
                       DatasetKind,
                       build_dataset,
                       dataset_kind,
                       dataset_sections,
                       list_datasets,
                       register_dataset,
                       validation_dataset,
)

__all__ = ["DatasetKind", "batch_transforms", "build_dataset", "dataset_kind", "dataset_record", "dataset_sections",
           "describe_augmentation", "list_datasets", "register_dataset", "test_transform", "train_transform",
           "validation_dataset"]
