"""Optimisation as the reference repos do it: AdamW without weight decay on 1-D parameters, biases and tokens;
cosine schedule with linear warm-up, stepped once per epoch (timm's CosineLRScheduler with t_in_epochs=True and
warmup_prefix=False: the warm-up ramps from ``warmup_lr`` to the base lr over ``warmup_epochs``, and from then
on the lr is the cosine curve evaluated at the epoch index itself)."""
from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decayed and non-decayed (1-D, ``*.bias``, names containing ``token``)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias") or "token" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, lr: float = 5e-4, weight_decay: float = 0.05) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)


class CosineWarmupSchedule:
    """lr(epoch) for a per-epoch step; ``state_dict``/``load_state_dict`` for exact resume.

    ``cosine_epochs`` (default ``epochs``): the length of the cosine; later epochs run at ``min_lr`` (the official
    ShapeNetPart script: a 100-epoch cosine, ``cycle_limit=1``, in a 300-epoch run)."""

    def __init__(self, optimizer: torch.optim.Optimizer, epochs: int, warmup_epochs: int = 10,
                 warmup_lr: float = 1e-6, min_lr: float = 1e-6, cosine_epochs: int | None = None) -> None:
        self.optimizer = optimizer
        self.epochs, self.warmup_epochs = cosine_epochs or epochs, warmup_epochs
        self.warmup_lr, self.min_lr = warmup_lr, min_lr
        self.base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self.epoch = 0
        self.step(0)

    def lr_at(self, epoch: int, base_lr: float) -> float:
        if epoch < self.warmup_epochs:
            return self.warmup_lr + epoch * (base_lr - self.warmup_lr) / self.warmup_epochs
        if epoch >= self.epochs:
            return self.min_lr
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1 + math.cos(math.pi * epoch / self.epochs))

    def step(self, epoch: int) -> None:
        """Set the learning rate for ``epoch`` (call at the start of each epoch)."""
        self.epoch = epoch
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(epoch, base)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.base_lrs = list(state["base_lrs"])
        self.step(state["epoch"])
