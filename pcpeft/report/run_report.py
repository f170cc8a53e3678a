"""``pcpeft report RUN``: the page of one run: its card, training curves, confusion matrix and per-class accuracy
(or per-category IoU for part segmentation) of the chosen checkpoint on the test split, and a gallery of test
clouds in interactive 3-D, misclassified (or worst-segmented) first."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..engine.data import build_dataset
from ..engine.data.checks import check_not_empty
from ..engine.recipe.schema import validate_recipe
from ..engine.runs.loading import load_run, read_run_config
from ..viz import distinct_colors
from . import clouds as cloud_views
from .card import card_data, card_html, run_card
from .confusion import confusion_figure, confusion_height, per_class, per_class_figure, per_class_table
from .curves import curves_figure
from .errors import ReportError
from .evaluation import classify, segment
from .page import Page, escape, require_plotly
from .parts import category_iou_figure, category_table, shape_order, shape_panels

LOG = logging.getLogger("pcpeft")
REPORT_NAME = "report.html"
VIEW_HEIGHT = 300


@dataclass
class ReportOptions:
    """What ``pcpeft report`` adds to a run: gallery size and colouring, device, a moved backbone file, which
    checkpoint."""

    clouds: int = 48
    color: str = "height"
    block: int = 0
    device: str = "cpu"
    ckpts: str | None = None
    checkpoint: str = "best"


def read_results(run_dir: Path) -> dict:
    """The run's ``results.json`` (a :class:`ReportError` naming it when it is missing or unreadable)."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise ReportError(f"{path}: no such file; the run has not finished an epoch yet (or {run_dir} is no run "
                          f"folder written by `pcpeft train`)")
    try:
        results = json.loads(path.read_text())
    except ValueError as err:
        raise ReportError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(results, dict):
        raise ReportError(f"{path}: not a pcpeft results.json (no mapping)")
    return results


def build_run_report(run: str | Path, out: str | Path | None = None, options: ReportOptions | None = None) -> Path:
    """Write the report of the run folder ``run`` to ``out`` (default ``RUN/report.html``); returns its path."""
    options = options or ReportOptions()
    run_dir = Path(run)
    require_plotly()
    config = read_run_config(run_dir)
    results = read_results(run_dir)
    out = Path(out) if out is not None else run_dir / REPORT_NAME
    settings = validate_recipe(config, str(run_dir / "config.yaml"))
    images = settings.modality == "images"
    task = results.get("task") or settings.task
    if options.color != "height" and (images or task != "classification"):
        what = "an image run has no point clouds" if images else "a part-segmentation page colours shapes by part"
        raise ReportError(f"--color {options.color}: {run_dir}: {what}; leave --color out")
    device = torch.device(options.device)
    model = load_run(run_dir, backbone=options.ckpts, device=device, checkpoint=options.checkpoint)
    if options.clouds and not images and task == "classification":
        cloud_views.check_coloring(options.color, options.block, model.cpu(), str(run_dir))
        model.to(device)
    test_set = build_dataset(settings.dataset, "test")
    check_not_empty(test_set, settings.dataset, "test")

    method = (settings.recipe.run or {}).get("peft")
    methods = method if isinstance(method, str) else "+".join(results.get("methods") or []) or "?"
    page = Page(f"{run_dir.name}: {methods} on {results.get('dataset')}",
                f"pcpeft report of {run_dir} ({options.checkpoint} checkpoint)")
    rows = run_card(results, config, options.checkpoint)
    page.add("Run", card_html(rows, results.get("note")), "card")
    page.data.update({"run": str(run_dir), "checkpoint": options.checkpoint, "task": task,
                      "card": card_data(rows), "test_samples": len(test_set)})
    _add_curves(page, results, options.checkpoint)
    LOG.info(f"report: evaluating the {options.checkpoint} checkpoint of {run_dir} on the {len(test_set)} test "
             f"samples")
    if task == "partseg":
        _add_partseg(page, model, settings, test_set, device, options, results)
    else:
        _add_classification(page, model, settings, test_set, device, options, results, images)
    path = page.write(out)
    LOG.info(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


def _add_curves(page: Page, results: dict, checkpoint: str) -> None:
    history = results.get("history") or []
    if not history:
        page.add("Training curves", '<p class="note">results.json holds no history (no epoch finished).</p>',
                 "curves")
        return
    epoch = (results.get(checkpoint) or {}).get("epoch")
    marked = "" if epoch is None else (f" Dashed: epoch {epoch}, the {checkpoint} checkpoint this page evaluates "
                                       f"(best chosen on the {results.get('best_chosen_on')} split).")
    body = page.figure(curves_figure(history, epoch), height=360)
    page.add("Training curves", body + f'<p class="note">from results.json history: losses, scores in percent '
                                       f"(training, validation, test) and the learning rate per epoch.{escape(marked)}"
                                       f"</p>", "curves")


def _score_note(results: dict, checkpoint: str, key: str, value: float, name: str) -> str:
    recorded = (results.get(checkpoint) or {}).get(key)
    told = f"; results.json {checkpoint}.{key}: {recorded:.2f}" if isinstance(recorded, (int, float)) else ""
    return f"test {name} of this evaluation (one pass, no voting): {value:.2f}{told}."


def _add_classification(page: Page, model, settings, test_set, device, options: ReportOptions, results: dict,
                        images: bool) -> None:
    predictions = classify(model, settings, test_set, device)
    names = list(getattr(model, "class_names", None) or range(settings.num_classes))
    matrix = predictions.confusion
    classes = per_class(matrix, names)
    accuracy = predictions.metrics["overall_acc"]
    note = _score_note(results, options.checkpoint, "overall_acc", accuracy, "accuracy")
    heat_map = page.figure(confusion_figure(matrix, names), height=confusion_height(len(names)))
    page.add("Confusion matrix", heat_map + f'<p class="note">rows: true class, columns: prediction; colour: share '
                                            f"of the row, number: count; {int(matrix.sum())} test samples. "
                                            f"{escape(note)}</p>", "confusion")
    page.add("Per-class accuracy", page.figure(per_class_figure(classes), height=320) + per_class_table(classes),
             "per-class")
    page.data.update({"overall_acc": accuracy, "mean_class_acc": predictions.metrics["mean_class_acc"],
                      "confusion_matrix": matrix.tolist(), "class_names": [str(n) for n in names],
                      "per_class": classes})
    if not options.clouds:
        page.data["gallery"] = []
        return
    if images:
        page.add("Gallery", '<p class="note">an image data set: no point clouds to draw.</p>', "gallery")
        page.data["gallery"] = []
        return
    order = cloud_views.gallery_order(predictions.labels, predictions.predicted, predictions.probability,
                                      options.clouds)
    limit = cloud_views.display_limit(len(order))
    model = model.cpu()
    tiles, gallery = [], []
    for index in order:
        points = cloud_views.model_input(settings, test_set[index][0])
        label, predicted = int(predictions.labels[index]), int(predictions.predicted[index])
        probability, correct = float(predictions.probability[index]), label == predicted
        panel = cloud_views.cloud_view(model, points, options.color, options.block, limit)
        figure = cloud_views.panels_figure([panel], limit, height=VIEW_HEIGHT, titles=False)
        verdict = "good" if correct else "bad"
        caption = (f"#{index} &middot; true <b>{escape(names[label])}</b> &middot; predicted "
                   f'<b class="{verdict}">{escape(names[predicted])}</b> (p {probability:.2f})')
        tiles.append(f'<div class="tile{"" if correct else " wrong"}"><div class="caption">{caption}</div>'
                     f'{page.figure(figure, VIEW_HEIGHT, three_d=True, css_class="view")}</div>')
        gallery.append({"index": index, "label": names[label], "predicted": names[predicted],
                        "probability": probability, "correct": correct, "points": cloud_views.drawn_points(figure)})
    wrong = int((predictions.labels != predictions.predicted).sum())
    npoints = settings.dataset.npoints
    body = (f'<p class="note">{len(order)} of the {len(test_set)} test clouds, the {wrong} misclassified first '
            f"(most confident mistakes first), then correct ones from each class in turn. "
            f"{_coloring_note(model, options)} Each view draws at most {limit} points (the model saw {npoints} a "
            f"cloud): points are subsampled for display only, to keep the page small. Drag to rotate, scroll to "
            f"zoom, double-click to reset.</p>{_coloring_legend(model, options)}"
            f'<div class="gallery">{"".join(tiles)}</div>')
    page.add("Gallery of test clouds", body, "gallery")
    page.data.update({"gallery": gallery, "display_points": limit, "color": options.color})


def _coloring_note(model, options: ReportOptions) -> str:
    if options.color == "experts":
        return (f"Colour: the SMoA expert each FPS group's token was routed to in SMoA block {options.block} (first "
                f"channel head), as `pcpeft viz routing` draws it.")
    if options.color == "groups":
        divider = model.base_model.group_divider
        return (f"Colour: the model's {divider.num_group} FPS groups of {divider.group_size} nearest points, one "
                f"colour each; black: the centres.")
    return "Colour: height (the y axis)."


def _coloring_legend(model, options: ReportOptions) -> str:
    if options.color != "experts":
        return ""
    count = model.peft_modules["smoa"].num_experts
    return cloud_views.legend_html([f"expert {e}" for e in range(count)], distinct_colors(count))


def _add_partseg(page: Page, model, settings, test_set, device, options: ReportOptions, results: dict) -> None:
    predictions = segment(model, settings, test_set, device)
    metrics = predictions.metrics
    names = list(test_set.categories)
    note = _score_note(results, options.checkpoint, "instance_miou", metrics["instance_miou"], "instance mIoU")
    page.add("Per-category IoU", page.figure(category_iou_figure(metrics), height=320)
             + category_table(metrics, predictions.categories, names)
             + f'<p class="note">class mIoU {metrics["class_miou"]:.2f} over {metrics["shapes"]} test shapes (the '
               f"official ShapeNetPart evaluation: each shape's prediction restricted to its category's parts); "
               f"{escape(note)}</p>", "iou")
    page.data.update({"instance_miou": metrics["instance_miou"], "class_miou": metrics["class_miou"],
                      "per_category_iou": metrics["per_category_iou"], "shapes": metrics["shapes"]})
    order = shape_order(predictions.shape_iou, options.clouds)
    limit = cloud_views.display_limit(2 * len(order))
    tiles, gallery = [], []
    for index in order:
        points = test_set[index][0].numpy()
        category = int(predictions.categories[index])
        iou = float(predictions.shape_iou[index])
        panels = shape_panels(points, predictions.predicted[index], predictions.truth[index],
                              test_set.category_parts[category], iou, limit)
        figure = cloud_views.panels_figure(panels, limit, height=VIEW_HEIGHT)
        caption = f"#{index} &middot; <b>{escape(names[category])}</b> &middot; shape IoU {iou:.1f}%"
        tiles.append(f'<div class="tile"><div class="caption">{caption}</div>'
                     f'{page.figure(figure, VIEW_HEIGHT, three_d=True, scenes=2, css_class="view")}</div>')
        gallery.append({"index": index, "category": names[category], "shape_iou": iou,
                        "points": cloud_views.drawn_points(figure)})
    body = (f'<p class="note">{len(order)} of the {len(test_set)} test shapes, the lowest shape IoU first; left: '
            f"predicted parts, right: true parts (one colour per part of the category, the same in both; the two "
            f"views turn together). Each view draws at most {limit} points (a shape has {len(test_set[0][0])}): "
            f"points are subsampled for display only, to keep the page small. Drag to rotate, scroll to zoom.</p>"
            f'<div class="gallery wide">{"".join(tiles)}</div>')
    if order:
        page.add("Predicted and true parts", body, "gallery")
    page.data.update({"gallery": gallery, "display_points": limit})


__all__ = ["REPORT_NAME", "ReportOptions", "build_run_report", "read_results"]
