"""Classifying point cloud files with a loaded run (what ``tools/predict.py`` does), with the training
preprocessing of :mod:`pcpeft.datasets.point_folder` and, optionally, ``tools/test.py``'s voting.

A file that cannot be read is reported (:class:`FileFailure`, naming it) and the others are still classified.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ...datasets.errors import DatasetError
from ...datasets.point_files import CLOUD_SUFFIXES
from ...datasets.point_folder import Preprocessing, cloud_files, prepare_cloud
from ..training.prediction import predict, predict_vote


@dataclass
class FilePrediction:
    """One classified file: ``probs`` (C,) softmax probabilities in class order."""

    file: str
    probs: np.ndarray

    def top(self, class_names: Sequence[str], k: int = 1) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(class_names[i], float(self.probs[i])) for i in order]

    def as_json(self, class_names: Sequence[str]) -> dict:
        name, prob = self.top(class_names)[0]
        return {"file": self.file, "class": name, "prob": prob,
                "probs": {c: float(p) for c, p in zip(class_names, self.probs)}}


@dataclass
class FileFailure:
    """A file that could not be classified, and why (the message names the file)."""

    file: str
    message: str


def run_preprocessing(settings) -> Preprocessing:
    """The preprocessing a run's data went through: its dataset section's npoints (and, for a PointCloudFolder,
    mesh_points / upsample / nan_points; other data sets use the folder defaults for those)."""
    section = settings.dataset
    fields = {k: getattr(section, k) for k in ("npoints", "mesh_points", "upsample", "nan_points")
              if hasattr(section, k)}
    return Preprocessing(**fields)


def collect_files(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[FileFailure]]:
    """Files to classify: each input file itself, each folder searched recursively for supported files (sorted).
    A missing input or a folder without such files is a :class:`FileFailure`."""
    files: list[Path] = []
    failures: list[FileFailure] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = cloud_files(path)
            if not found:
                failures.append(FileFailure(str(path), f"{path}: no point cloud file ({', '.join(CLOUD_SUFFIXES)}) "
                                                       f"in this folder"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            failures.append(FileFailure(str(path), f"{path}: no such file or folder"))
    return files, failures


@torch.no_grad()
def classify_files(model: torch.nn.Module, files: Sequence[Path], preprocessing: Preprocessing,
                   device: torch.device | str = "cpu", batch_size: int = 32, vote: int = 0, seed: int = 0,
                   progress: bool = False) -> list[FilePrediction | FileFailure]:
    """One result per file, in order. ``vote`` >= 1: mean logits over that many re-samples (``predict_vote``,
    the voting of ``tools/test.py``); 0: one deterministic pass."""
    from tqdm import tqdm

    from ...progress import shown

    results: list[FilePrediction | FileFailure | None] = []
    clouds, where = [], []
    quiet = not shown(progress)
    for path in tqdm(files, desc="reading", unit="file", disable=quiet, leave=False):
        try:
            clouds.append(prepare_cloud(path, preprocessing))
        except (DatasetError, OSError) as err:
            results.append(FileFailure(str(path), str(err)))
            continue
        where.append(len(results))
        results.append(None)
    if clouds:
        data = TensorDataset(torch.from_numpy(np.stack(clouds)), torch.zeros(len(clouds), dtype=torch.long))
        device = torch.device(device)
        bar = (lambda batches: tqdm(batches, desc="classifying", unit="batch", disable=quiet, leave=False)) \
            if progress else None
        if vote:
            logits, _ = predict_vote(model, data, preprocessing.npoints, device, vote, batch_size, seed,
                                     progress=bar)
        else:
            logits, _ = predict(model, data, lambda points: points, device, batch_size, progress=bar)
        probs = torch.softmax(logits.double(), dim=1).numpy()
        for slot, path_index in enumerate(where):
            results[path_index] = FilePrediction(str(files[path_index]), probs[slot])
    return [r for r in results if r is not None]

