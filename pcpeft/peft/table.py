"""Trainable-parameter table of every method and preset on one backbone (docs/methods.md is made from it)."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from ..models.registry import create_model
from . import available_methods, get_peft_model
from .base import PeftError

#: layer-free helpers that only make sense inside a composition
NOT_STANDALONE = ("unfreeze", "prompt_generator")

#: what each official code base's optimiser trains on Point-MAE with 15 classes (docs/methods.md says how each
#: was read off the official code); pcpeft's default config of the method must give the same number
OFFICIAL_TRAINABLE = {"dapt": 1_087_771, "idpt": 1_696_783, "ppt": 1_042_191, "pointgst": 622_831}


def official_count(method: str, backbone: str, num_classes: int | None) -> int | None:
    """The official trainable count for this row, where the official code defines one (Point-MAE, 15 classes)."""
    if backbone == "point_mae" and num_classes == 15:
        return OFFICIAL_TRAINABLE.get(method)
    return None


def trainable_table(backbone: str = "point_mae", device: str | None = None, **model_kwargs) -> list[dict]:
    """One row per method: trainable and total parameters (total = backbone incl. head + added layers).

    ``device="meta"`` builds without weights (counts only; fast for PointGPT-L). A method that refuses the
    backbone gets a row with ``trainable`` None and its reason under ``refused``.
    """
    rows = []
    for method in available_methods():
        if method in NOT_STANDALONE:
            continue
        try:
            with torch.device(device) if device else nullcontext():
                model = get_peft_model(create_model(backbone, **model_kwargs), method)
        except PeftError as err:
            rows.append({"method": method, "trainable": None, "total": None, "percent": None, "refused": str(err)})
            continue
        trainable, total = model.trainable_parameters()
        rows.append({"method": method, "trainable": trainable, "total": total, "percent": 100 * trainable / total,
                     "official": official_count(method, backbone, model_kwargs.get("num_classes"))})
    return rows


def format_markdown(rows: list[dict]) -> str:
    lines = ["| method | trainable | official trainable | total | trainable % |", "| --- | ---: | ---: | ---: | ---: |"]
    official = lambda r: f"{r['official']:,}" if r.get("official") else "—"  # noqa: E731
    lines += [f"| {r['method']} | {r['trainable']:,} | {official(r)} | {r['total']:,} | {r['percent']:.3f} |"
              if r["trainable"] is not None else f"| {r['method']} | — | — | — | — |" for r in rows]
    return "\n".join(lines)
