"""Trainable-parameter table of every method and preset on one backbone (docs/methods.md is made from it)."""
from __future__ import annotations

from ..models.registry import create_model
from . import available_methods, get_peft_model

#: layer-free helpers that only make sense inside a composition
NOT_STANDALONE = ("unfreeze", "prompt_generator")


def trainable_table(backbone: str = "point_mae", **model_kwargs) -> list[dict]:
    """One row per method: trainable and total parameters (total = backbone incl. head + added layers)."""
    rows = []
    for method in available_methods():
        if method in NOT_STANDALONE:
            continue
        model = get_peft_model(create_model(backbone, **model_kwargs), method)
        trainable, total = model.trainable_parameters()
        rows.append({"method": method, "trainable": trainable, "total": total, "percent": 100 * trainable / total})
    return rows


def format_markdown(rows: list[dict]) -> str:
    lines = ["| method | trainable | total | trainable % |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r['method']} | {r['trainable']:,} | {r['total']:,} | {r['percent']:.3f} |" for r in rows]
    return "\n".join(lines)
