"""A printable summary of a model: parameters per top-level module and one timed forward pass."""
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
