"""The one training loop: epochs of optimiser steps, with hooks called at fixed points.

Fine-tuning (classification, part segmentation) and masked-autoencoder pre-training run through
:class:`TrainingLoop`; what differs is the task (batches and loss: ``task.transforms(generator)`` and
``task.training_loss(model, batch, transform, device)``) and the hooks the caller registers (evaluation and
epoch choice, checkpointing, logging).

Reproducibility: every random draw of epoch ``e`` (sampler order, point sampling, augmentation, dropout / drop
path) is seeded from ``(seed, e)`` at the start of the epoch, so a run resumed from the checkpoint of any finished
epoch continues bit-identically on CPU.

Hook points, in order, for each epoch: ``before_epoch(loop, epoch)``; the steps; ``after_epoch(loop, epoch, record,
eval_transform)`` (hooks may add to the epoch's ``record``: evaluation adds the test and validation metrics; the
checkpoint and log hooks come after it); ``barrier`` between processes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from .distributed import barrier
from .seeding import epoch_seed, seed_everything


class Hook(Protocol):
    """A part the loop calls: evaluation, checkpointing, logging. Every method is optional."""

    def before_epoch(self, loop: "TrainingLoop", epoch: int) -> None: ...

    def after_epoch(self, loop: "TrainingLoop", epoch: int, record: dict, eval_transform: Callable) -> None: ...


@dataclass
class StepSettings:
    """How one optimiser step runs: gradient clipping (None: none), the weight of the methods' auxiliary losses,
    the autocast and the gradient scaler."""

    grad_clip: float | None
    aux_loss_weight: float
    precision: Any  # pcpeft.engine.training.precision.Precision
    scaler: torch.amp.GradScaler


@dataclass
class LoopData:
    """The training split and how it is batched (``per_rank_batch`` clouds per process)."""

    train_set: Dataset
    per_rank_batch: int
    drop_last: bool
    num_workers: int


@dataclass
class TrainingLoop:
    """Runs epochs ``[start, stop)`` of ``epochs``; ``model`` is what is trained (``train_model`` the same, or its
    DDP wrapper), ``task`` supplies transforms and the loss."""

    model: nn.Module
    train_model: nn.Module
    task: Any
    optimizer: torch.optim.Optimizer
    schedule: Any
    data: LoopData
    step: StepSettings
    device: torch.device
    seed: int
    epochs: int
    hooks: Sequence[Any] = ()
    rank: int = 0
    world: int = 1
    progress: bool = False
    desc: str = "epoch"
    step_times: list[float] = field(default_factory=list)

    def run(self, start: int, stop: int) -> None:
        """Train epochs ``start`` .. ``stop - 1``."""
        for epoch in range(start, stop):
            self.schedule.step(epoch)
            generator = seed_everything(epoch_seed(self.seed, epoch))
            self._call("before_epoch", epoch)
            loader = self._loader(epoch, generator)
            transform, eval_transform = self.task.transforms(generator)
            self.model.train()
            record = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"],
                      **self._train_epoch(loader, transform, epoch)}
            self._call("after_epoch", epoch, record, eval_transform)
            barrier()

    def _call(self, point: str, *args) -> None:
        for hook in self.hooks:
            method = getattr(hook, point, None)
            if method is not None:
                method(self, *args)

    def _loader(self, epoch: int, generator: torch.Generator) -> DataLoader:
        train_set = self.data.train_set
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        if self.world > 1:
            sampler = DistributedSampler(train_set, self.world, self.rank, shuffle=True, seed=self.seed,
                                         drop_last=True)
            sampler.set_epoch(epoch)
        else:
            sampler = RandomSampler(train_set, generator=generator)
        return DataLoader(train_set, batch_size=self.data.per_rank_batch, sampler=sampler,
                          drop_last=self.data.drop_last, num_workers=self.data.num_workers)

    def _train_epoch(self, loader: DataLoader, transform: Callable, epoch: int) -> dict[str, float]:
        from tqdm import tqdm

        from ...progress import shown

        losses, aux_losses, correct, seen = [], [], 0, 0
        bar = tqdm(loader, desc=f"{self.desc} {epoch + 1}/{self.epochs}", leave=False,
                   disable=not shown(self.rank == 0 and self.progress))
        for batch in bar:
            start = time.perf_counter()
            loss, aux, result = self._step(batch, transform)
            self.step_times.append(time.perf_counter() - start)
            losses.append(loss)
            aux_losses.append(aux)
            correct, seen = correct + result.correct, seen + result.seen
            bar.set_postfix(loss=f"{loss:.3f}")
        summary = {"train_loss": float(np.mean(losses)), "aux_loss": float(np.mean(aux_losses))}
        if seen:
            summary["train_acc"] = 100.0 * correct / seen
        return summary

    def _step(self, batch, transform: Callable) -> tuple[float, float, Any]:
        """One optimiser step; returns the task loss, the auxiliary loss and the task's step result."""
        step = self.step
        with step.precision.autocast():
            result = self.task.training_loss(self.train_model, batch, transform, self.device)
            aux = self.model.aux_loss() if hasattr(self.model, "aux_loss") else torch.zeros(())
            total = result.loss + step.aux_loss_weight * aux
        self.optimizer.zero_grad(set_to_none=True)
        step.scaler.scale(total).backward()
        if step.grad_clip:
            step.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], step.grad_clip)
        step.scaler.step(self.optimizer)
        step.scaler.update()
        return result.loss.item(), float(aux.detach()), result


def plain_step(precision: Any = None) -> StepSettings:
    """A step without clipping, auxiliary losses or autocast (pre-training's)."""
    from .precision import Precision

    fp32 = precision or Precision("cpu", False, torch.float32, "fp32")
    return StepSettings(None, 0.0, fp32, torch.amp.GradScaler("cuda", enabled=False))


__all__ = ["Hook", "LoopData", "StepSettings", "TrainingLoop", "plain_step"]
