"""What a run records about its data in config.yaml's ``run`` section."""
from __future__ import annotations

import json
from pathlib import Path

from torch.utils.data import Dataset

from ..recipe.yaml_io import ConfigError


def dataset_record(train_set: Dataset, exp_dir: Path | None, num_classes: int | None = None) -> dict:
    """The class names (when the data set has them) and, for a PointCloudFolder, ``split.json`` (every split's
    files, written into ``exp_dir``). A PointCloudFolder whose class folders are not ``num_classes`` (the model's)
    is a :class:`ConfigError`."""
    record: dict = {}
    classes = getattr(train_set, "classes", None)
    if isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes):
        record["class_names"] = list(classes)
    splits = getattr(train_set, "splits", None)
    if splits is not None and hasattr(splits, "record"):
        if num_classes is not None and len(splits.classes) != num_classes:
            raise ConfigError(f"model.num_classes is {num_classes} but {splits.root} has {len(splits.classes)} "
                              f"class folders ({', '.join(splits.classes)}); leave model.num_classes out of a "
                              f"PointCloudFolder recipe to take the folder count")
        if exp_dir is not None:
            (exp_dir / "split.json").write_text(json.dumps(splits.record(), indent=2))
        record["split_file"] = "split.json"
    return record
