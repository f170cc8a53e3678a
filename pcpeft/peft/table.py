"""Trainable-parameter table of every method and preset on one backbone (docs/methods.md is made from it)."""
from __future__ import annotations

from contextlib import nullcontext

import torch

from ..models.registry import create_model
from . import available_methods, get_peft_model
from .base import PeftError

#: layer-free helpers that only make sense inside a composition
NOT_STANDALONE = ("unfreeze", "prompt_generator")

#: what each official code base's optimiser trains with 15 classes on the backbone of its release (docs/methods.md
#: says how each was read off the official code); pcpeft's default config of the method must give the same number
OFFICIAL_TRAINABLE = {("dapt", "point_mae"): 1_087_771, ("idpt", "point_mae"): 1_696_783,
                      ("ppt", "point_mae"): 1_042_191, ("pointgst", "point_mae"): 622_831,
                      ("gaprompt", "point_mae"): 628_147, ("pointlora", "point_mae"): 772_752,
                      ("most", "pointgpt_l"): 8_142_095}


def official_count(method: str, backbone: str, num_classes: int | None) -> int | None:
    """The official trainable count for this row, where the official code defines one (its release's backbone,
    15 classes)."""
    if num_classes == 15:
        return OFFICIAL_TRAINABLE.get((method, backbone))
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
