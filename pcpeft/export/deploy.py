"""What both export formats share: the deployable form of a run's model (SSF / LoRA merged) and test clouds."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import UserError
from ..peft import PeftModel


class ExportError(UserError, ValueError):
    """A model cannot be written in the requested format; the message says which method or layer, and why."""


def methods_of(model: PeftModel) -> list[str]:
    return [c.method for c in model.peft_configs]


def deployable(model: PeftModel) -> tuple[nn.Module, bool]:
    """(a copy of ``model`` with every PEFT layer folded into the backbone, True) when all its methods merge
    (``full``, ``linear``, ``bitfit``, ``ssf``, ``lora``), else (a copy of ``model`` as it is, False): adapters,
    SMoA and prompts compute input-dependent outputs that no backbone weights reproduce. Either in eval mode;
    ``model`` itself is not changed."""
    clone = copy.deepcopy(model)
    if all(c.mergeable for c in clone.peft_configs):
        return clone.merge_and_unload().eval(), True
    return clone.eval(), False


def random_clouds(batch: int, npoints: int, seed: int = 0) -> torch.Tensor:
    """(batch, npoints, 3) float32 Gaussian clouds, each centred and scaled into the unit sphere (the models'
    input normalisation)."""
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(batch, npoints, 3, generator=generator)
    points = points - points.mean(dim=1, keepdim=True)
    return points / points.norm(dim=-1).amax(dim=1).view(-1, 1, 1)
