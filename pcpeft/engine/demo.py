"""The main job on the embedded default: synthetic data -> Point-MAE pre-training -> four fine-tuning methods
(plus full fine-tuning and a linear probe from a random initialisation, to show what pre-training changed) -> one table.

The setting is the one PEFT is for: self-supervised pre-training on a larger unlabeled pool (1,200 synthetic
clouds, labels unused), then fine-tuning with few labels (20 per class). Everything is written under one folder.
All numbers are on the SYNTHETIC demo set and say so.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..datasets.demo_shapes import CLASSES
from .pretrain import pretrain
from .trainer import RunOptions, train

LOG = logging.getLogger("pcpeft")

SIZES = {
    # ~7 minutes on 2 CPU cores
    "default": dict(pool_per_class=100, train_per_class=20, test_per_class=25, pretrain_epochs=8,
                    finetune_epochs=16, eval_every=2, batch_size=32),
    # seconds: for tests
    "tiny": dict(pool_per_class=3, train_per_class=3, test_per_class=2, pretrain_epochs=1, finetune_epochs=1,
                 eval_every=1, batch_size=8),
}

#: A small Point-MAE (the full-size one needs hours of CPU for this): 128-d, 4 blocks, 32 groups of 8 points.
DEMO_MODEL = dict(name="point_mae", num_classes=len(CLASSES), trans_dim=128, encoder_dims=128, depth=4, num_heads=2,
                  num_group=32, group_size=8, drop_path_rate=0.1)
METHODS = ("linear", "full", "ssf", "adapter_x")
#: Rows trained from a random initialisation, to show what pre-training changed.
BASELINES = ("full", "linear")


def demo_config(data_root: Path, size: dict, epochs: int, lr: float, train_per_class: int, seed: int) -> dict:
    return {
        "model": dict(DEMO_MODEL),
        "dataset": {"name": "SyntheticDemo", "root": str(data_root), "npoints": 512, "generator_seed": seed,
                    "train_per_class": train_per_class, "test_per_class": size["test_per_class"]},
        "optimizer": {"lr": lr, "weight_decay": 0.05},
        "scheduler": {"epochs": epochs, "warmup_epochs": 1, "warmup_lr": 1e-6, "min_lr": 1e-6},
        "train": {"batch_size": size["batch_size"], "grad_clip": 10.0, "num_workers": 0, "aux_loss_weight": 1.0,
                  "eval_every": size["eval_every"]},
        "augmentation": {"scale_translate": True, "rotate": False},
    }


def run_demo(out: str | Path = "demo_output", size: str = "default", seed: int = 0, progress: bool = True) -> dict:
    """Run the whole demo into ``out``; returns {'rows': [...], 'table': markdown, 'seconds': float}."""
    start = time.perf_counter()
    out = Path(out)
    cfg = SIZES[size]
    pool, labeled = out / "synthetic_pool", out / "synthetic_demo"
    LOG.info(f"[1/3] pre-training a small Point-MAE on {cfg['pool_per_class'] * len(CLASSES)} unlabeled synthetic "
             f"clouds ({cfg['pretrain_epochs']} epochs)")
    pre_cfg = demo_config(pool, cfg, cfg["pretrain_epochs"], 1e-3, cfg["pool_per_class"], seed + 1)
    pre_cfg["pretrain"] = {"mask_ratio": 0.6, "decoder_depth": 1, "decoder_num_heads": 2}
    ckpt = pretrain(pre_cfg, out / "pretrain", seed=seed, progress=progress, overwrite=True)

    LOG.info("[2/3] fine-tuning: " + ", ".join(BASELINES) + " from a random initialisation, then "
             + ", ".join(METHODS) + " from the pre-trained model")
    runs = [(f"{m} (random init)", m, None) for m in BASELINES]
    runs += [(m, m, str(ckpt)) for m in METHODS]
    rows = []
    for label, method, pretrained in runs:
        config = demo_config(labeled, cfg, cfg["finetune_epochs"], 5e-4 if method == "full" else 2e-3,
                             cfg["train_per_class"], seed)
        name = method if pretrained else f"{method}_scratch"
        result = train(config, RunOptions(config_path="demo.yaml", ckpts=pretrained, peft=method, exp_name=name,
                                          seed=seed, experiments_root=str(out / "runs"), progress=progress,
                                          overwrite=True))
        rows.append({"method": label, "pretrained": pretrained is not None,
                     "trainable_percent": result["trainable_percent"],
                     "last_acc": result["last"]["overall_acc"], "best_acc": result["best"]["overall_acc"],
                     "best_epoch": result["best"]["epoch"], "step_seconds": result["median_step_seconds"]})
    table = format_table(rows)
    seconds = time.perf_counter() - start
    summary = {"rows": rows, "table": table, "seconds": seconds, "size": size, "synthetic": True}
    (out / "demo_results.json").write_text(json.dumps(summary, indent=2))
    (out / "demo_results.md").write_text(table + "\n")
    LOG.info(f"[3/3] done in {seconds:.0f} s")
    return summary


def format_table(rows: list[dict]) -> str:
    lines = ["SYNTHETIC demo set (procedural shapes, 12 classes; pre-trained on 1,200 unlabeled clouds, fine-tuned "
             "on 20 labels per class) - test accuracy, not a benchmark result", "",
             "| method | trainable % | test acc (last epoch) | test acc (best epoch*) | step time (s) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['trainable_percent']:.2f} | {r['last_acc']:.1f} | {r['best_acc']:.1f} "
                     f"(ep {r['best_epoch'] + 1}) | {r['step_seconds']:.3f} |")
    lines.append("")
    lines.append("*best epoch selected on the test split, as the reference repos do: optimistic.")
    lines += ["", *pretraining_effect(rows)]
    return "\n".join(lines)


def pretraining_effect(rows: list[dict]) -> list[str]:
    """Plain statements of what pre-training changed, read off the rows (last-epoch accuracies)."""
    by = {(r["method"].split(" ")[0], r["pretrained"]): r["last_acc"] for r in rows}
    out = []
    for method, what in (("linear", "frozen backbone, head only"), ("full", "every weight trained")):
        if (method, True) in by and (method, False) in by:
            with_pre, without = by[(method, True)], by[(method, False)]
            verdict = "helped" if with_pre > without else "did not help"
            out.append(f"Pre-training {verdict} {method} ({what}): {with_pre:.1f}% pre-trained vs {without:.1f}% "
                       f"from a random initialisation.")
    return out
