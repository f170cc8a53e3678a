"""Run the same PEFT methods on one point cloud task and one image task with the same adapter code, and write a
side-by-side table (method, trainable % per modality, test accuracy per modality, step time).

The default comparison (:func:`default_comparison`) is the setting PEFT is for, on both sides: a shipped
pre-trained backbone, sha256-checked before use, fine-tuned on a small labelled set.

* 3D: the demo's small Point-MAE, pre-trained as a masked autoencoder on 3,000 unlabeled synthetic clouds
  (``pcpeft/assets/demo_backbone.safetensors``), fine-tuned with the recipe ``finetune_synthetic`` on the
  SYNTHETIC demo set (24 training clouds per class, a quarter held out for validation, 25 test clouds per class)
  for 20 epochs: the demo's setting and learning rates.
* 2D: a 4-block ViT-Tiny/16 on 64x64 inputs, pre-trained supervised on 25,000 procedural glyph images
  (``pcpeft/assets/demo_vit.safetensors``; :mod:`pcpeft.datasets.generated_images`, no digits), fine-tuned with
  the recipe ``images/digits_vit_tiny`` on scikit-learn's handwritten digits (a fifth of the training split held
  out for validation) for 6 epochs.

Each side's epoch is chosen on its validation split and that epoch's test accuracy is reported next to the last
epoch's; the test split chooses nothing. Recipes are found with :func:`resolve_recipe`, so the comparison runs
from any folder. :func:`compare_modalities` runs any two recipes and checkpoints given explicitly.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.recipe.shipped import resolve_recipe
from ..engine.recipe.yaml_io import apply_overrides, load_config
from ..engine.training.finetune import RunOptions, train
from ..errors import UserError
from .demo import ASSETS, BackboneChecksumError, verified_backbone
from .demo import RUNS as DEMO_RUNS
from .demo import SIZES as DEMO_SIZES

POINTS_BACKBONE = ASSETS / "demo_backbone.safetensors"
POINTS_BACKBONE_RECORD = ASSETS / "demo_backbone.json"
IMAGES_BACKBONE = ASSETS / "demo_vit.safetensors"
IMAGES_BACKBONE_RECORD = ASSETS / "demo_vit.json"
POINTS_RECIPE = "finetune_synthetic"
IMAGES_RECIPE = "images/digits_vit_tiny"
METHODS = ("linear", "full", "ssf", "adapter_x")
DEFAULT_OUT = "experiments/compare"
MODALITIES = ("points", "images")

#: the shipped backbones, by resolved path: what the table calls them
SHIPPED = {POINTS_BACKBONE.resolve(): "the shipped pre-trained Point-MAE",
           IMAGES_BACKBONE.resolve(): "the shipped pre-trained ViT"}


@dataclass(frozen=True)
class Side:
    """One modality of a comparison: a recipe (a path or a shipped recipe name), ``key=value`` overrides for
    every method, extra overrides per method (learning rates), the checkpoint the runs start from (None: a
    random initialisation) and, when set, the folder under the comparison's output folder its data set is
    generated in (``dataset.root``)."""

    recipe: str
    overrides: tuple[str, ...] = ()
    method_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ckpts: str | None = None
    data_folder: str | None = None

    def config(self, method: str, out: str | Path = DEFAULT_OUT) -> dict:
        """The recipe with the data root under ``out`` (when ``data_folder`` is set), the overrides of every
        method, then ``method``'s own."""
        root = [f"dataset.root={Path(out) / self.data_folder}"] if self.data_folder else []
        base = load_config(resolve_recipe(self.recipe))
        return apply_overrides(base, [*root, *self.overrides, *self.method_overrides.get(method, ())])

    def with_overrides(self, recipe: str | None = None, ckpts: str | None = None,
                       opts: list[str] | None = None) -> "Side":
        """This side as the command line changes it. Nothing given: this side unchanged. Anything given: exactly
        that - ``recipe`` (default: this side's recipe) with ``opts`` only, from ``ckpts`` (None: a random
        initialisation); this side's overrides, learning rates and checkpoint belong to its own setting and are
        not carried over."""
        if recipe is None and ckpts is None and opts is None:
            return self
        return Side(recipe or self.recipe, tuple(opts or ()), {}, ckpts)


@dataclass(frozen=True)
class ComparisonSettings:
    """What :func:`run_comparison` runs: ``methods`` on both sides."""

    methods: tuple[str, ...]
    points: Side
    images: Side

    def side(self, modality: str) -> Side:
        return self.points if modality == "points" else self.images


class ComparisonError(UserError):
    """A comparison that cannot run as asked."""


def verified_images_backbone() -> tuple[Path, str]:
    """``(path, sha256)`` of the shipped ViT once its sha256 equals its record's (:func:`verified_backbone`)."""
    try:
        return verified_backbone(IMAGES_BACKBONE, IMAGES_BACKBONE_RECORD)
    except BackboneChecksumError as err:
        raise BackboneChecksumError(f"{IMAGES_BACKBONE} is missing or differs from its record "
                                    f"{IMAGES_BACKBONE_RECORD}: reinstall pcpeft, or remake it with the record's "
                                    f"'command' and 'asset_command'") from err


#: the 3D side is the demo's fine-tuning setting (:mod:`pcpeft.experiments.demo`: its sizes, 20 epochs, and its learning
#: rates, chosen there on the validation split)
POINTS_SIZE = DEMO_SIZES["default"]
POINTS_LR = {method: lr for _, method, init, lr in DEMO_RUNS if init == "pretrained"}
#: the 2D side's learning rates, each the best on its validation split (seed 0, the shipped ViT, 6 epochs; ties to
#: the smaller) of three: linear {5e-3, 1e-2, 2e-2}: 94.4 / 94.8 / 94.4, ssf {2e-3, 5e-3, 1e-2}: 95.1 / 98.3 /
#: 97.9, adapter_x {1e-3, 2e-3, 5e-3}: 93.0 / 97.2 / 96.5, full {5e-4, 1e-3, 2e-3}: 97.9 / 98.6 / 97.6. The test
#: split chose nothing.
IMAGES_LR = {"linear": 1e-2, "full": 1e-3, "ssf": 5e-3, "adapter_x": 2e-3}
IMAGES_EPOCHS = 6


def default_comparison(methods: tuple[str, ...] = METHODS) -> ComparisonSettings:
    """The default comparison (module docstring), both shipped backbones sha256-checked. The synthetic point set
    is generated under ``OUT/synthetic_demo`` (the digits ship with scikit-learn)."""
    points_backbone, _ = verified_backbone(POINTS_BACKBONE, POINTS_BACKBONE_RECORD)
    images_backbone, _ = verified_images_backbone()
    epochs = POINTS_SIZE["epochs"]
    points = Side(POINTS_RECIPE, (
        f"dataset.train_per_class={POINTS_SIZE['train_per_class']}",
        f"dataset.test_per_class={POINTS_SIZE['test_per_class']}", "dataset.generator_seed=0",
        "dataset.val_fraction=0.25", "dataset.val_seed=0", f"scheduler.epochs={epochs}",
        f"scheduler.warmup_epochs={min(2, epochs - 1)}", f"train.batch_size={POINTS_SIZE['batch_size']}",
        "train.num_workers=0", "train.eval_every=1"),
        {m: (f"optimizer.lr={lr}",) for m, lr in POINTS_LR.items()}, str(points_backbone), "synthetic_demo")
    images = Side(IMAGES_RECIPE, (
        "model.depth=4", "dataset.val_fraction=0.2", "dataset.val_seed=0", f"scheduler.epochs={IMAGES_EPOCHS}",
        "scheduler.warmup_epochs=1", "train.num_workers=0", "train.eval_every=1"),
        {m: (f"optimizer.lr={lr}",) for m, lr in IMAGES_LR.items()}, str(images_backbone))
    return ComparisonSettings(tuple(methods), points, images)


def run_default_comparison(out: str | Path = DEFAULT_OUT, methods: tuple[str, ...] = METHODS, seed: int = 0,
                           progress: bool = False, device: str = "cpu", overwrite: bool = False) -> dict:
    """:func:`run_comparison` of :func:`default_comparison`: 8 runs, 3.5 minutes on 2 CPU cores with one thread
    (a busy machine takes longer)."""
    return run_comparison(default_comparison(methods), out, seed, progress, device, overwrite)


def compare_modalities(methods: list[str], points: Side | str | Path, images: Side | str | Path, out: str | Path,
                       overrides_points: list[str] = (), overrides_images: list[str] = (),
                       ckpts_points: str | None = None, ckpts_images: str | None = None, seed: int = 0,
                       progress: bool = False, device: str = "cpu", overwrite: bool = False) -> dict:
    """Compare ``methods`` on two sides: each a :class:`Side` (as :func:`default_comparison` gives), or a recipe
    (a path or a shipped recipe name) with its overrides and checkpoint (None: a random initialisation).
    Returns ``{"rows", "sides", "table", "seed", "seconds"}``."""
    def side(given, overrides, ckpts, name: str) -> Side:
        if not isinstance(given, Side):
            return Side(str(given), tuple(overrides), {}, ckpts)
        if overrides or ckpts:
            raise ComparisonError(f"{name}: give the overrides and checkpoint inside its Side "
                                  f"(Side.with_overrides), not beside it")
        return given

    settings = ComparisonSettings(tuple(methods), side(points, overrides_points, ckpts_points, "points"),
                                  side(images, overrides_images, ckpts_images, "images"))
    return run_comparison(settings, out, seed, progress, device, overwrite)


def run_comparison(settings: ComparisonSettings, out: str | Path, seed: int = 0, progress: bool = False,
                   device: str = "cpu", overwrite: bool = False) -> dict:
    """Train every method on both sides into ``out/{points,images}/``; writes ``out/comparison.md`` (the table)
    and ``out/comparison.json`` (rows, sides, table, seed, seconds) and returns the latter's content."""
    if not settings.methods:
        raise ComparisonError("a comparison needs at least one method")
    start = time.perf_counter()
    out = Path(out)
    sides = {m: describe_side(settings.side(m), out) for m in MODALITIES}
    rows = []
    for method in settings.methods:
        row = {"method": method}
        for modality in MODALITIES:
            side = settings.side(modality)
            result = train(side.config(method, out), RunOptions(
                config_path=sides[modality]["recipe"], ckpts=side.ckpts, peft=method, exp_name=method, seed=seed,
                device=device, experiments_root=str(out / modality), progress=progress, overwrite=overwrite))
            row[modality] = side_result(result, sides[modality])
        rows.append(row)
    table = comparison_markdown(rows)
    summary = {"rows": rows, "sides": sides, "table": table, "seed": seed, "seconds": time.perf_counter() - start}
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table + "\n")
    (out / "comparison.json").write_text(json.dumps(summary, indent=2))
    return summary


def describe_side(side: Side, out: str | Path) -> dict:
    """What a side runs: the recipe file, the overrides, the data folder, and what it starts from: the checkpoint
    (its file name, whether it is a shipped backbone and which) or a random initialisation."""
    record = {"recipe": str(resolve_recipe(side.recipe)), "overrides": list(side.overrides),
              "data_root": str(Path(out) / side.data_folder) if side.data_folder else None,
              "method_overrides": {k: list(v) for k, v in side.method_overrides.items()},
              "pretrained": side.ckpts is not None, "backbone": None, "shipped_backbone": None}
    if side.ckpts is not None:
        path = Path(side.ckpts).resolve()
        record.update(backbone=path.name, backbone_path=str(path), shipped_backbone=SHIPPED.get(path))
    return record


def side_result(result: dict, side: dict) -> dict:
    """One cell group of a row: the run's numbers and where it started from."""
    best, last = result["best"] or {}, result["last"] or {}
    return {"trainable_percent": result["trainable_percent"], "best_acc": best.get("overall_acc"),
            "val_acc": best.get("val_acc"), "epoch": best.get("epoch"), "last_acc": last.get("overall_acc"),
            "best_chosen_on": result["best_chosen_on"], "step_seconds": result["median_step_seconds"],
            "dataset": result["dataset"], "synthetic": result["synthetic"], "pretrained": side["pretrained"],
            "backbone": side["backbone"], "shipped_backbone": side["shipped_backbone"]}


def _start(cell: dict) -> str:
    if not cell["pretrained"]:
        return "from a random initialisation"
    return f"from {cell['shipped_backbone'] or 'the checkpoint'} {cell['backbone']}"


def _chosen(cell: dict) -> str:
    if cell["best_chosen_on"] == "validation":
        return "the epoch chosen on its validation split (held out from the training data)"
    return "the epoch chosen on the TEST split (no validation split: optimistic)"


def comparison_markdown(rows: list[dict]) -> str:
    """The table: a header saying what each side starts from and which split chose the epoch, then one row per
    method (test accuracy at the chosen epoch and at the last one)."""
    p, i = rows[0]["points"], rows[0]["images"]
    points = f"points: {p['dataset']}{' (SYNTHETIC)' if p['synthetic'] else ''}"
    images = f"images: {i['dataset']}{' (SYNTHETIC)' if i['synthetic'] else ''}"
    if p["shipped_backbone"] and i["shipped_backbone"]:
        first = (f"Both sides start from the shipped pre-trained backbones - {points} from {p['shipped_backbone']} "
                 f"{p['backbone']}; {images} from {i['shipped_backbone']} {i['backbone']}.")
    else:
        first = f"{points}, {_start(p)}; {images}, {_start(i)}."
    head = [first, f"Test accuracy: 3D at {_chosen(p)}, 2D at {_chosen(i)}; '(last)' = the last epoch."]
    lines = [*head, "", "| method | trainable % (3D) | trainable % (2D) | acc 3D | acc 2D | acc 3D (last) | "
             "acc 2D (last) | step 3D (s) | step 2D (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        p, i = r["points"], r["images"]
        lines.append(f"| {r['method']} | {p['trainable_percent']:.3f} | {i['trainable_percent']:.3f} | "
                     f"{p['best_acc']:.1f} (ep {p['epoch'] + 1}) | {i['best_acc']:.1f} (ep {i['epoch'] + 1}) | "
                     f"{p['last_acc']:.1f} | {i['last_acc']:.1f} | {p['step_seconds']:.3f} | "
                     f"{i['step_seconds']:.3f} |")
    return "\n".join(lines)


__all__ = ["ComparisonSettings", "Side", "compare_modalities", "comparison_markdown", "default_comparison",
           "run_comparison", "run_default_comparison", "verified_images_backbone"]
