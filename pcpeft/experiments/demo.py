"""The main job on the embedded default: the shipped pre-trained demo backbone -> four fine-tuning methods (plus
full fine-tuning from a random initialisation with the same budget) -> one honest table, a routing picture and
``results.json``.

The setting is the one PEFT is for: self-supervised pre-training on a larger unlabeled pool (3,000 synthetic
clouds, labels unused; done once by ``tools/pretrain.py`` with ``cfgs/pretrain_synthetic.yaml`` and shipped as
``pcpeft/assets/demo_backbone.safetensors``, sha256-checked before use), then fine-tuning with few labels. Each
run holds out a validation split from its training data (``dataset.val_fraction``); the epoch is chosen on it and
the test accuracy of that epoch is reported next to the last epoch's. The test split chooses nothing. All
numbers are on the SYNTHETIC demo set and say so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from ..datasets.demo_shapes import CLASSES
from ..engine.recipe.schema import validate_dataset_recipe
from ..engine.recipe.shipped import RECIPES_DIR
from ..engine.recipe.yaml_io import load_config
from ..engine.training.finetune import RunOptions, evaluate_run, load_for_test, train, write_json
from ..errors import UserError

LOG = logging.getLogger("pcpeft")

ASSETS = Path(__file__).resolve().parents[1] / "assets"
BACKBONE = ASSETS / "demo_backbone.safetensors"
BACKBONE_RECORD = ASSETS / "demo_backbone.json"
FINETUNE_RECIPE = RECIPES_DIR / "finetune_synthetic.yaml"
PRETRAIN_RECIPE = RECIPES_DIR / "pretrain_synthetic.yaml"

SIZES = {
    # ~8 minutes on 2 CPU cores
    "default": dict(train_per_class=24, test_per_class=25, epochs=20, batch_size=24),
    # seconds: for tests
    "tiny": dict(train_per_class=4, test_per_class=2, epochs=1, batch_size=8),
}

#: (row label, method, init, learning rate). Each row's learning rate is the best on the validation split (seed 0,
#: the shipped backbone) over the grid {5e-4, 1e-3, 2e-3, 5e-3}, ties to the smaller; the test split chose nothing
#: (docs/benchmarks.md lists the validation accuracies of the grid).
RUNS = (
    ("full (random init)", "full", "scratch", 2e-3),
    ("full", "full", "pretrained", 2e-3),
    ("linear", "linear", "pretrained", 5e-3),
    ("ssf", "ssf", "pretrained", 5e-3),
    ("adapter_x", "adapter_x", "pretrained", 2e-3),
)


class BackboneChecksumError(UserError):
    """The demo backbone file is not the one its record describes."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_backbone(path: Path = BACKBONE, record: Path = BACKBONE_RECORD) -> tuple[Path, str]:
    """``(path, sha256)`` of the shipped backbone once its sha256 equals the recorded one; else a clear error."""
    if not path.is_file() or not record.is_file():
        raise BackboneChecksumError(f"the demo backbone {path} or its record {record} is missing: reinstall, or run "
                                    f"`python tools/demo.py --pretrain` to pre-train it anew")
    expected = json.loads(record.read_text())["sha256"]
    found = sha256_of(path)
    if found != expected:
        raise BackboneChecksumError(f"{path}: sha256 {found[:16]}... differs from the recorded {expected[:16]}... "
                                    f"({record}); the file was changed - restore it, or run `python tools/demo.py "
                                    f"--pretrain`")
    return path, found


def demo_config(data_root: Path, size: dict, lr: float, seed: int, amp: bool = False) -> dict:
    """The fine-tuning recipe cfgs/finetune_synthetic.yaml at the demo's sizes, with a validation split."""
    config = load_config(FINETUNE_RECIPE)
    config["dataset"].update(root=str(data_root), train_per_class=size["train_per_class"],
                             test_per_class=size["test_per_class"], generator_seed=seed, val_fraction=0.25,
                             val_seed=seed)
    config["optimizer"]["lr"] = lr
    config["scheduler"].update(epochs=size["epochs"], warmup_epochs=min(2, size["epochs"] - 1))
    config["train"].update(batch_size=size["batch_size"], num_workers=0, eval_every=1, amp_cpu=amp)
    return config


def pretrain_backbone(out: Path, seed: int, progress: bool) -> Path:
    """Redo the shipped pre-training (``--pretrain``): ``cfgs/pretrain_synthetic.yaml`` into ``out/pretrain``."""
    from ..engine.training.pretrain import pretrain

    config = load_config(PRETRAIN_RECIPE)
    config["dataset"]["root"] = str(out / "synthetic_pool")
    return pretrain(config, out / "pretrain", seed=seed, progress=progress, overwrite=True)


def run_demo(out: str | Path = "demo_output", size: str = "default", seed: int = 0, progress: bool = True,
             redo_pretraining: bool = False, amp: bool = False) -> dict:
    """Run the whole demo into ``out``; returns the ``results.json`` content plus the printed ``table``."""
    start = time.perf_counter()
    out = Path(out)
    cfg = SIZES[size]
    if redo_pretraining:
        LOG.info("[1/3] pre-training the demo backbone anew (cfgs/pretrain_synthetic.yaml)")
        backbone, sha = pretrain_backbone(out, seed, progress), None
        sha = sha256_of(backbone)
    else:
        backbone, sha = verified_backbone()
        LOG.info(f"[1/3] the shipped pre-trained demo backbone {backbone.name} (sha256 {sha[:12]}... verified)")
    labeled = out / "synthetic_demo"
    LOG.info("[2/3] fine-tuning: " + ", ".join(label for label, *_ in RUNS))
    rows, ssf_run = [], None
    for label, method, init, lr in RUNS:
        config = demo_config(labeled, cfg, lr, seed, amp)
        ckpts = str(backbone) if init == "pretrained" else None
        name = method if init == "pretrained" else f"{method}_scratch"
        result = train(config, RunOptions(config_path="demo.yaml", ckpts=ckpts, peft=method, exp_name=name,
                                          seed=seed, experiments_root=str(out / "runs"), progress=progress,
                                          overwrite=True))
        rows.append({"method": label, "init": init, "trainable_pct": result["trainable_percent"],
                     "val_acc": result["best"]["val_acc"], "test_acc": result["best"]["overall_acc"],
                     "test_acc_last": result["last"]["overall_acc"], "epoch": result["best"]["epoch"],
                     "step_seconds": result["median_step_seconds"]})
        if method == "ssf":
            ssf_run = (config, out / "runs" / "demo" / name)
    merged = merged_ssf_accuracy(*ssf_run, backbone)
    LOG.info("[3/3] routing picture of adapter_x")
    picture = routing_picture(demo_config(labeled, cfg, 2e-3, seed), out / "runs" / "demo" / "adapter_x", backbone,
                              out / "routing.png")
    seconds = time.perf_counter() - start
    summary = {"rows": rows, "merged_ssf_test_acc": merged, "backbone_sha256": sha, "seconds": seconds,
               "size": size, "synthetic": True, "picture": str(picture),
               "precision": training_precision(amp)}
    summary["table"] = format_table(summary)
    write_json(out / "results.json", summary)
    (out / "results.md").write_text(summary["table"] + "\n")
    LOG.info(f"done in {seconds:.0f} s")
    return summary


def training_precision(amp: bool) -> str:
    """What the training steps run in (the trainer picks it the same way), evaluation being fp32."""
    from ..engine.training.precision import select_precision

    chosen = select_precision(torch.device("cpu"), False, amp)
    return f"training steps in {'bf16' if chosen.enabled else 'fp32'}: {chosen.reason}; evaluation in fp32"


def merged_ssf_accuracy(config: dict, run_dir: Path, backbone: Path) -> float:
    """Test accuracy of the ssf run's chosen epoch after ``merge_and_unload`` (SSF folded into the weights)."""
    model = load_for_test(config, str(backbone), str(run_dir / "adapter-best"), torch.device("cpu"))
    plain = model.merge_and_unload()
    from ..peft import get_peft_model

    return evaluate_run(config, get_peft_model(plain, "full"), torch.device("cpu"), vote=False)["overall_acc"]


def routing_picture(config: dict, run_dir: Path, backbone: Path, path: Path) -> Path:
    from .. import viz
    from ..engine.data import build_dataset, test_transform
    from ..engine.recipe.schema import validate_recipe

    model = load_for_test(config, str(backbone), str(run_dir / "adapter-best"), torch.device("cpu"))
    section = validate_recipe(config, str(run_dir / "config.yaml")).dataset
    sample = build_dataset(section, "test")[0][0]
    points = test_transform(section.npoints)(sample[None])[0]
    panels = viz.routing_panels(*viz.expert_choices(model, points), 3.0)
    return viz.render_panels(panels, path, (1000, 500), 4, "auto", viz.View())


def pretraining_pool_size() -> int:
    """Clouds in the unlabeled pre-training pool of ``cfgs/pretrain_synthetic.yaml``."""
    section = validate_dataset_recipe(load_config(PRETRAIN_RECIPE), str(PRETRAIN_RECIPE))
    return section.train_per_class * len(CLASSES)


def format_table(summary: dict) -> str:
    rows = summary["rows"]
    lines = [f"SYNTHETIC demo set (procedural shapes, {len(CLASSES)} classes): backbone pre-trained on "
             f"{pretraining_pool_size():,} unlabeled "
             f"clouds; fine-tuned on the labelled training split minus a validation split (a quarter of each class). "
             f"Test accuracy, not a benchmark result.", "",
             "| method | init | trainable % | val acc | test acc (epoch chosen on val) | test acc (last epoch) |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['init']} | {r['trainable_pct']:.2f} | {r['val_acc']:.1f} | "
                     f"{r['test_acc']:.1f} (ep {r['epoch'] + 1}) | {r['test_acc_last']:.1f} |")
    lines += ["", f"precision: {summary.get('precision', 'fp32')}",
              f"merged SSF (merge_and_unload) test accuracy: {summary['merged_ssf_test_acc']:.1f}"]
    return "\n".join(lines)
