"""The parts the training loop calls after each epoch (:mod:`.loop`): evaluation and the choice of the best epoch,
the epoch's log line and TensorBoard scalars, and the atomic checkpoint."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from ..runs.training_state import save_atomic, save_best

LOG = logging.getLogger("pcpeft")


@dataclass
class History:
    """Every epoch's record, and the metrics of the best and of the last evaluated epoch."""

    epochs: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)


@dataclass
class EvaluationHook:
    """After every ``eval_every``-th epoch and the last one: the test metrics, and the validation metrics where
    there is a validation split; the best epoch is chosen on validation (on test otherwise, as the reference
    repositories do) and its weights saved (``save_best``) by the main process. Appends every epoch's record to
    ``history``."""

    task: Any
    test_set: Dataset
    val_set: Dataset | None
    history: History
    exp_dir: Path
    eval_every: int
    main: bool

    def after_epoch(self, loop, epoch: int, record: dict, eval_transform: Callable) -> None:
        if (epoch + 1) % self.eval_every == 0 or epoch + 1 == loop.epochs:
            self._evaluate(loop, epoch, record, eval_transform)
        self.history.epochs.append(record)

    def _evaluate(self, loop, epoch: int, record: dict, eval_transform: Callable) -> None:
        def evaluate(data: Dataset) -> dict:
            return self.task.evaluate(loop.model, data, eval_transform, loop.device, loop.data.per_rank_batch,
                                      loop.data.num_workers, loop.rank, loop.world)

        metrics = evaluate(self.test_set)
        record.update(self.task.summary(metrics, "test"))
        chooser = self.task.score
        if self.val_set is not None:
            val_metrics = evaluate(self.val_set)
            chooser = self.task.val_score
            metrics[chooser] = val_metrics[self.task.score]
            record.update(self.task.summary(val_metrics, "val"))
        if not self.history.best or metrics[chooser] > self.history.best[chooser]:
            self.history.best = {"epoch": epoch, **metrics}
            if self.main:
                save_best(loop.model, self.exp_dir)
        self.history.last = {"epoch": epoch, **metrics}


@dataclass
class LogHook:
    """The main process's line per epoch (``format_line(record)``) and, with a ``writer``, TensorBoard scalars."""

    format_line: Callable[[dict], str]
    writer: Any = None

    def after_epoch(self, loop, epoch: int, record: dict, eval_transform: Callable) -> None:
        LOG.info(self.format_line(record))
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, epoch)


@dataclass
class CheckpointHook:
    """The main process writes ``payload(loop, epoch, record)`` atomically to ``path`` after every epoch."""

    path: Path
    payload: Callable[[Any, int, dict], dict]

    def after_epoch(self, loop, epoch: int, record: dict, eval_transform: Callable) -> None:
        save_atomic(self.payload(loop, epoch, record), self.path)


def record_line(record: dict) -> str:
    """``epoch=3 lr=0.001 train_loss=1.23 ...``: an epoch's record as one log line."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())


__all__ = ["CheckpointHook", "EvaluationHook", "History", "LogHook", "record_line"]
