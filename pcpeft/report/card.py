"""The run's card: what was trained, on what, how the reported epoch was chosen and where the backbone came from;
every value read from the run's ``results.json`` and ``config.yaml`` (its ``run`` section)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine.recipe.schema import recipe_section
from .page import escape, table_html

#: the score each task reports, and its name on the card
SCORES = {"classification": ("overall_acc", "overall accuracy (%)"), "partseg": ("instance_miou",
                                                                                 "instance mIoU (%)")}


@dataclass(frozen=True)
class CardRow:
    """One line of the card: its label, the value as shown, where it comes from (``results.json: key`` or
    ``config.yaml: section.key``) and the value as stored there."""

    label: str
    text: str
    source: str
    value: Any


def _model_text(model: dict) -> str:
    name = model.get("name", "point_mae")
    shape = [f"{key} {model[key]}" for key in ("trans_dim", "depth", "num_group", "group_size") if key in model]
    return f"{name} ({', '.join(shape)})" if shape else name


def method_text(results: dict, record: dict) -> str:
    """The method as asked for (``--peft``, e.g. adapter_x) with the methods it is made of (results.json)."""
    methods = ", ".join(results.get("methods") or []) or "-"
    asked = record.get("peft")
    return f"{asked} ({methods})" if isinstance(asked, str) and asked != methods else methods


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


def run_card(results: dict, config: dict, checkpoint: str = "best") -> list[CardRow]:
    """The card of a run from its ``results.json`` and ``config.yaml`` dicts; ``checkpoint`` ('best' / 'last') is
    the checkpoint the rest of the report evaluates."""
    record, model = recipe_section(config, "run"), recipe_section(config, "model")
    task = results.get("task", "classification")
    score_key, score_name = SCORES.get(task, SCORES["classification"])
    trainable, total = results.get("trainable_parameters"), results.get("total_parameters")
    rows = [
        CardRow("task", str(task), "results.json: task", results.get("task")),
        CardRow("backbone", _model_text(model), "config.yaml: model.name", model.get("name")),
        CardRow("method(s)", method_text(results, record), "results.json: methods", results.get("methods")),
        CardRow("trainable parameters", f"{trainable:,}" if isinstance(trainable, int) else str(trainable),
                "results.json: trainable_parameters", trainable),
        CardRow("total parameters", f"{total:,}" if isinstance(total, int) else str(total),
                "results.json: total_parameters", total),
        CardRow("trainable share", f"{results.get('trainable_percent', 0):.3f}%", "results.json: trainable_percent",
                results.get("trainable_percent")),
        CardRow("data set", str(results.get("dataset")) + (" (synthetic)" if results.get("synthetic") else ""),
                "results.json: dataset", results.get("dataset")),
        CardRow("split", _text(results.get("split")), "results.json: split", results.get("split")),
        CardRow("points per cloud", _text(results.get("npoints")), "results.json: npoints", results.get("npoints")),
        CardRow("voting", _yes_no(results.get("voting")), "results.json: voting", results.get("voting")),
        CardRow("augmentation", _text(results.get("augmentation")), "results.json: augmentation",
                results.get("augmentation")),
        CardRow("seed", str(results.get("seed")), "results.json: seed", results.get("seed")),
        CardRow("epochs run", f"{results.get('epochs_run')} (finished: {_yes_no(results.get('finished'))})",
                "results.json: epochs_run", results.get("epochs_run")),
        CardRow("best epoch chosen on", f"{results.get('best_chosen_on')} split" + (
            " (optimistic: the test split chose it)" if results.get("best_chosen_on") == "test" else ""),
                "results.json: best_chosen_on", results.get("best_chosen_on")),
    ]
    for which in ("best", "last"):
        entry = results.get(which) or {}
        score = entry.get(score_key)
        shown = " (this report's checkpoint)" if which == checkpoint else ""
        rows.append(CardRow(f"{which} epoch, test {score_name}",
                            f"epoch {entry.get('epoch')}: {score:.2f}{shown}" if isinstance(score, (int, float))
                            else "-", f"results.json: {which}.{score_key}", score))
    ckpts = record.get("ckpts")
    rows += [
        CardRow("pre-trained backbone (--ckpts)", str(ckpts) if ckpts else "none: a random initialisation",
                "config.yaml: run.ckpts", ckpts),
        CardRow("backbone file", str(record.get("ckpts_path") or "-"), "config.yaml: run.ckpts_path",
                record.get("ckpts_path")),
        CardRow("backbone sha256", str(record.get("ckpts_sha256") or "-"), "config.yaml: run.ckpts_sha256",
                record.get("ckpts_sha256")),
        CardRow("trained on", str(results.get("device")), "results.json: device", results.get("device")),
    ]
    return rows


def card_html(rows: list[CardRow], note: str | None = None) -> str:
    """The card as a two-column table (label, value), with the source of each value as its tooltip."""
    lines = [[f'<span title="{escape(r.source)}">{escape(r.label)}</span>',
              f'<span class="mono">{escape(r.text)}</span>' if "sha256" in r.label or "file" in r.label
              else escape(r.text)] for r in rows]
    return table_html(None, lines, css_class="card") + (f'<p class="note">{escape(note)}</p>' if note else "")


def card_data(rows: list[CardRow]) -> list[dict]:
    """The card as JSON-able records (label, text, source, value)."""
    return [{"label": r.label, "text": r.text, "source": r.source, "value": r.value} for r in rows]


__all__ = ["CardRow", "SCORES", "card_data", "card_html", "method_text", "run_card"]
