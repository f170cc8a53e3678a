"""The paper table of a sweep (or of any set of run folders): one row per cell, mean / std / n / 95% interval /
min / max over replicates, axes chosen on validation, paired comparisons with a baseline row; written as Markdown,
LaTeX (booktabs), CSV, JSON and a PNG of the cells with their intervals.

A cell is a trial's axis values except the replicate axis (``seed``; ``dataset.fold`` for few-shot) and the axes
chosen on validation (``select``). Which epoch's test score is reported: ``val`` (the epoch chosen on the
validation split; the default when every run has one), ``last`` (the final epoch; the default otherwise), or
``test`` (the epoch chosen on the test split, as the reference repositories report it: optimistic, and labelled
so).
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..engine.recipe.schema import recipe_section
from ..engine.recipe.yaml_io import ConfigError
from .stats import Paired, Summary, paired, summarize

EPOCH_LABELS = {"val": "epoch chosen on validation", "last": "last epoch",
                "test": "epoch chosen on the TEST split (optimistic)"}
METRICS = {"classification": ("overall_acc", "mean_class_acc"), "partseg": ("instance_miou", "class_miou")}
METRIC_NAMES = {"overall_acc": "OA", "mean_class_acc": "mAcc", "instance_miou": "Ins. mIoU", "class_miou": "Cls. mIoU"}


@dataclass
class RunRecord:
    """A finished run: its cell, replicate value, values of the selected axes, and its results.json."""

    folder: Path
    cell: dict[str, str]
    replicate: str
    selected: dict[str, str]
    results: dict


@dataclass
class Row:
    cell: dict[str, str]
    summaries: dict[str, Summary]
    values: dict[str, dict[str, float]]  # metric -> replicate -> value
    chosen: dict[str, str] = field(default_factory=dict)
    paired: Paired | None = None


@dataclass
class Table:
    rows: list[Row]
    metrics: tuple[str, ...]
    epoch: str
    replicate: str
    select: list[str]
    baseline: dict[str, str] | None
    notes: list[str] = field(default_factory=list)


def _sweep_spec(root: Path) -> dict:
    path = root / "sweep.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def _text(value: Any) -> str:
    from .grid import _value_text

    return _value_text(value)


def collect_runs(root: str | Path) -> tuple[list[RunRecord], str, list[str]]:
    """Every finished run folder below ``root`` (sweep trials or plain run folders), the replicate axis and the
    selected axes (from the sweep's ``sweep.yaml`` when there is one)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder (give a sweep's --out_dir or a folder of run folders)")
    spec = _sweep_spec(root)
    replicate, select = spec.get("replicate", "seed"), list(spec.get("select") or [])
    records = []
    for path in sorted(root.rglob("results.json")):
        if ".ray" in path.parts:
            continue
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{path}: not a readable results.json") from None
        if not isinstance(results, dict) or results.get("finished") is not True:
            continue
        records.append(_record(path.parent, results, replicate, select))
    return records, replicate, select


def _record(folder: Path, results: dict, replicate: str, select: list[str]) -> RunRecord:
    trial_file = folder / "trial.json"
    if trial_file.is_file():
        trial = json.loads(trial_file.read_text())
        axes = trial.get("axes", {})
        rep = _text(axes.get(replicate, trial.get("seed", 0)))
        return RunRecord(folder, dict(trial.get("cell", {})), rep, {k: _text(axes.get(k)) for k in select}, results)
    config = yaml.safe_load((folder / "config.yaml").read_text()) if (folder / "config.yaml").is_file() else {}
    recipe = Path(str(recipe_section(config, "run").get("config_path", folder.parent.name))).stem
    cell = {"recipe": recipe, "peft": "+".join(results.get("methods") or []),
            "init": "pretrained" if results.get("pretrained") else "scratch"}
    return RunRecord(folder, cell, str(results.get("seed", 0)), {}, results)


def metric_value(results: dict, metric: str, epoch: str) -> float | None:
    """``metric`` of the epoch ``epoch`` (val / last / test) of a run, or None where that epoch has no value."""
    if epoch == "last":
        entry = results.get("last") or {}
    elif epoch == "val":
        entry = (results.get("best") or {}) if results.get("best_chosen_on") == "validation" else {}
    else:
        entry = results.get("best") or {}
    value = entry.get(metric)
    return float(value) if isinstance(value, (int, float)) else None


def _validation_score(results: dict) -> float | None:
    best = results.get("best") or {}
    if results.get("best_chosen_on") != "validation":
        return None
    for key in ("val_acc", "val_instance_miou", "val_score"):
        if isinstance(best.get(key), (int, float)):
            return float(best[key])
    return None


def _key(cell: dict[str, str]) -> tuple:
    return tuple(sorted(cell.items()))


def choose_on_validation(records: list[RunRecord], select: list[str]) -> tuple[list[RunRecord], dict[tuple, dict]]:
    """Per cell, the values of the ``select`` axes with the best mean validation score over replicates; only the
    runs with those values are kept. The test split chooses nothing."""
    if not select:
        return records, {}
    by_cell: dict[tuple, dict[tuple, list[RunRecord]]] = {}
    for record in records:
        choice = tuple(record.selected[k] for k in select)
        by_cell.setdefault(_key(record.cell), {}).setdefault(choice, []).append(record)
    kept, chosen = [], {}
    for cell, options in by_cell.items():
        scores = {}
        for choice, runs in options.items():
            values = [_validation_score(r.results) for r in runs]
            if any(v is None for v in values):
                raise ConfigError(f"{runs[0].folder}: --select {','.join(select)} needs a validation split "
                                  f"(dataset.val_fraction > 0 or the data set's own); this run chose on "
                                  f"{runs[0].results.get('best_chosen_on')}")
            scores[choice] = sum(values) / len(values)
        best = max(sorted(scores), key=lambda c: scores[c])  # ties: the first in sorted order
        chosen[cell] = {"values": dict(zip(select, best)), "val_score": scores[best]}
        kept += options[best]
    return kept, chosen


def build_table(root: str | Path, epoch: str | None = None, baseline: dict[str, str] | None = None) -> Table:
    """The table of the finished runs below ``root``."""
    records, replicate, select = collect_runs(root)
    if not records:
        raise ConfigError(f"{root}: no finished run below it (results.json with finished: true)")
    tasks = {r.results.get("task", "classification") for r in records}
    if len(tasks) > 1:
        raise ConfigError(f"{root}: runs of several tasks ({', '.join(sorted(tasks))}): give one task's folder")
    metrics = METRICS[tasks.pop()]
    validated = all(r.results.get("best_chosen_on") == "validation" for r in records)
    epoch = epoch or ("val" if validated else "last")
    if epoch == "val" and not validated:
        raise ConfigError(f"{root}: --epoch val needs every run to hold a validation split; use --epoch last")
    records, chosen = choose_on_validation(records, select)
    rows = _rows(records, metrics, epoch, chosen)
    table = Table(rows, metrics, epoch, replicate, select, baseline)
    table.notes.append(f"test scores of the {EPOCH_LABELS[epoch]}; mean, std, n and 95% t interval over "
                       f"{replicate}")
    if select:
        table.notes.append(f"{', '.join(select)} chosen per cell on the validation split (best mean over "
                           f"{replicate}); the test split chose nothing")
    if baseline:
        _add_paired(table)
    return table


def _rows(records: list[RunRecord], metrics: tuple[str, ...], epoch: str, chosen: dict) -> list[Row]:
    groups: dict[tuple, list[RunRecord]] = {}
    for record in records:
        groups.setdefault(_key(record.cell), []).append(record)
    rows = []
    for key, runs in groups.items():
        values: dict[str, dict[str, float]] = {m: {} for m in metrics}
        for run in sorted(runs, key=lambda r: r.replicate):
            for metric in metrics:
                value = metric_value(run.results, metric, epoch)
                if value is not None:
                    values[metric][run.replicate] = value
        summaries = {m: summarize(list(v.values())) for m, v in values.items() if v}
        rows.append(Row(dict(runs[0].cell), summaries, values, chosen.get(key, {}).get("values", {})))
    return rows


def _add_paired(table: Table) -> None:
    assert table.baseline is not None
    primary = table.metrics[0]
    index = {_key(row.cell): row for row in table.rows}
    found = False
    for row in table.rows:
        base_cell = {**row.cell, **table.baseline}
        base = index.get(_key(base_cell))
        if base is None or base is row:
            continue
        shared = sorted(set(row.values[primary]) & set(base.values[primary]))
        if shared:
            found = True
            row.paired = paired([row.values[primary][s] for s in shared], [base.values[primary][s] for s in shared])
    if not found:
        wanted = ", ".join(f"{k}={v}" for k, v in table.baseline.items())
        raise ConfigError(f"--baseline {wanted}: no cell of the table matches it with shared replicates")
    table.notes.append(f"paired difference of {METRIC_NAMES[primary]} against the baseline "
                       f"({', '.join(f'{k}={v}' for k, v in table.baseline.items())}) over shared {table.replicate}")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _cell_columns(table: Table) -> list[str]:
    columns: list[str] = []
    for row in table.rows:
        columns += [k for k in row.cell if k not in columns]
    return columns


def table_records(table: Table) -> list[dict]:
    """The table as flat records (CSV and JSON rows)."""
    out = []
    for row in table.rows:
        record: dict[str, Any] = dict(row.cell)
        for key, value in row.chosen.items():
            record[f"chosen {key}"] = value
        for metric, summary in row.summaries.items():
            for part, value in summary.as_dict().items():
                record[f"{metric}_{part}"] = value
            record[f"{metric}_values"] = row.values[metric]
        if row.paired is not None:
            for part, value in row.paired.as_dict().items():
                record[f"paired_{part}"] = value
        out.append(record)
    return out


def markdown(table: Table) -> str:
    """The table as Markdown, notes first."""
    cells = _cell_columns(table)
    head = [*cells, *[f"chosen {k}" for k in table.select]]
    for metric in table.metrics:
        name = METRIC_NAMES[metric]
        head += [f"{name} mean ± std", f"{name} 95% CI", "n", f"{name} min-max"]
    if table.baseline:
        head += ["Δ vs baseline (95% CI)", "test, p"]
    lines = [f"_{note}_" for note in table.notes] + ["", "| " + " | ".join(head) + " |",
                                                    "|" + "---|" * len(head)]
    for row in table.rows:
        parts = [row.cell.get(c, "") for c in cells] + [row.chosen.get(k, "") for k in table.select]
        for metric in table.metrics:
            s = row.summaries.get(metric)
            if s is None:
                parts += ["-", "-", "0", "-"]
                continue
            parts += [f"{s.mean:.2f} ± {_fmt(s.std)}", f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]", str(s.n),
                      f"{s.min:.2f}-{s.max:.2f}"]
        if table.baseline:
            p = row.paired
            parts += (["-", "-"] if p is None else
                      [f"{p.mean_diff:+.2f} [{_fmt(p.ci_low)}, {_fmt(p.ci_high)}] (n={p.n})",
                       f"{p.test}, {_fmt(p.p_value, 3)}"])
        lines.append("| " + " | ".join(parts) + " |")
    return "\n".join(lines)


def latex(table: Table) -> str:
    """The table as a booktabs LaTeX tabular (mean ± std and the 95% interval per metric)."""
    cells = _cell_columns(table)
    head = [*cells, *[f"chosen {k}" for k in table.select]]
    head += [f"{METRIC_NAMES[m]} (mean $\\pm$ std) [95\\% CI]" for m in table.metrics]
    if table.baseline:
        head.append("$\\Delta$ vs baseline")
    lines = ["\\begin{tabular}{" + "l" * (len(cells) + len(table.select)) + "r" * (len(head) - len(cells)
                                                                                  - len(table.select)) + "}",
             "\\toprule", " & ".join(_tex(h) if "$" not in h else h for h in head) + " \\\\", "\\midrule"]
    for row in table.rows:
        parts = [_tex(row.cell.get(c, "")) for c in cells] + [_tex(row.chosen.get(k, "")) for k in table.select]
        for metric in table.metrics:
            s = row.summaries.get(metric)
            parts.append("-" if s is None else f"{s.mean:.2f} $\\pm$ {_fmt(s.std)} [{_fmt(s.ci_low)}, "
                                               f"{_fmt(s.ci_high)}]")
        if table.baseline:
            p = row.paired
            parts.append("-" if p is None else f"{p.mean_diff:+.2f} (p={_fmt(p.p_value, 3)})")
        lines.append(" & ".join(parts) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    notes = "".join(f"% {note}\n" for note in table.notes)
    return notes + "\n".join(lines)


def _tex(text: str) -> str:
    for char, escaped in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"),
                          ("$", "\\$"), ("{", "\\{"), ("}", "\\}"), ("~", "\\textasciitilde{}")):
        text = text.replace(char, escaped)
    return text


def csv_text(table: Table) -> str:
    records = table_records(table)
    columns: list[str] = []
    for record in records:
        columns += [k for k in record if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for record in records:
        writer.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in record.items()})
    return buffer.getvalue()


def plot(table: Table, path: Path) -> Path:
    """A PNG of the cells' primary metric with their 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = table.metrics[0]
    rows = [r for r in table.rows if metric in r.summaries]
    one_recipe = len({r.cell.get("recipe") for r in rows}) == 1
    labels = [", ".join(str(v) for k, v in r.cell.items() if not (one_recipe and k == "recipe")) for r in rows]
    means = [r.summaries[metric].mean for r in rows]
    lows = [r.summaries[metric].mean - (r.summaries[metric].ci_low if r.summaries[metric].ci_low is not None
                                        else r.summaries[metric].mean) for r in rows]
    highs = [(r.summaries[metric].ci_high if r.summaries[metric].ci_high is not None else r.summaries[metric].mean)
             - r.summaries[metric].mean for r in rows]
    figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.6), dpi=120)
    axis.errorbar(range(len(rows)), means, yerr=[lows, highs], fmt="o", capsize=4)
    for i, row in enumerate(rows):
        axis.scatter([i] * len(row.values[metric]), list(row.values[metric].values()), s=10, alpha=0.5,
                     color="grey")
    axis.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    axis.set_ylabel(f"{METRIC_NAMES[metric]} (%)")
    axis.set_title(f"{EPOCH_LABELS[table.epoch]}: mean and 95% interval over {table.replicate}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write_table(table: Table, out_dir: str | Path) -> dict[str, Path]:
    """``table.md``, ``table.tex``, ``table.csv``, ``table.json`` and ``table.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    files = {"md": out_dir / "table.md", "tex": out_dir / "table.tex", "csv": out_dir / "table.csv",
             "json": out_dir / "table.json", "png": out_dir / "table.png"}
    files["md"].write_text(markdown(table) + "\n")
    files["tex"].write_text(latex(table) + "\n")
    files["csv"].write_text(csv_text(table))
    files["json"].write_text(json.dumps({"epoch": table.epoch, "replicate": table.replicate, "select": table.select,
                                         "baseline": table.baseline, "notes": table.notes,
                                         "rows": table_records(table)}, indent=2))
    plot(table, files["png"])
    return files


__all__ = ["RunRecord", "Table", "build_table", "choose_on_validation", "collect_runs", "markdown", "latex",
           "metric_value", "write_table"]
