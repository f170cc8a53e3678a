"""A printable summary of a model: parameters per top-level module and one timed forward pass; and a table of
every point backbone with its parameters and GFLOPs per cloud."""
from __future__ import annotations

import time

import torch
from torch import nn


def parameter_table(model: nn.Module) -> list[tuple[str, int, int]]:
    """(module name, parameters, trainable parameters) for each top-level child that owns parameters."""
    rows = []
    for name, child in model.named_children():
        total = sum(p.numel() for p in child.parameters())
        trainable = sum(p.numel() for p in child.parameters() if p.requires_grad)
        if total:
            rows.append((name, total, trainable))
    direct = [p for _, p in model.named_parameters(recurse=False)]
    if direct:
        rows.insert(0, ("(own parameters)", sum(p.numel() for p in direct),
                        sum(p.numel() for p in direct if p.requires_grad)))
    return rows


def summarize(model: nn.Module, points: torch.Tensor) -> str:
    """Markdown table of parameters plus the output shape and wall time of ``model(points)`` in eval mode."""
    rows = parameter_table(model)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines = [f"{type(model).__name__}: {total:,} parameters ({trainable:,} trainable)", "",
             "| module | parameters | trainable |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {n:,} | {t:,} |" for name, n, t in rows]
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        out = model(points)
        elapsed = time.perf_counter() - start
    lines += ["", f"forward of input {tuple(points.shape)} -> output {tuple(out.shape)} in {elapsed * 1000:.0f} ms "
                  f"on {points.device}"]
    return "\n".join(lines)


def gflops_per_cloud(model: nn.Module, points: torch.Tensor) -> float:
    """Multiply-adds (in 1e9, the convention of the papers' "GFLOPs") of one eval forward of one cloud (1, N, 3),
    counted by ``torch.utils.flop_counter`` over matmuls, convolutions and attention (FPS and kNN not included)."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(points[:1])
    return counter.get_total_flops() / 2e9


def backbone_table(names: list[str], num_classes: int = 15, num_group: int = 128, group_size: int = 32,
                   npoints: int = 2048) -> str:
    """Markdown: parameters and GFLOPs per cloud of each named point backbone at the given shapes."""
    from .registry import create_model

    lines = [f"{num_classes} classes, {npoints} points, {num_group} groups of {group_size}", "",
             "| model | parameters | GFLOPs / cloud |", "| --- | ---: | ---: |"]
    cloud = torch.randn(1, npoints, 3, generator=torch.Generator().manual_seed(0))
    for name in names:
        model = create_model(name, num_classes=num_classes, num_group=num_group, group_size=group_size)
        params = sum(p.numel() for p in model.parameters())
        lines.append(f"| {name} | {params:,} | {gflops_per_cloud(model, cloud):.2f} |")
        del model
    return "\n".join(lines)
