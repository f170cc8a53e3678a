"""The demo over several seeds, through the sweep and the table: each seed draws its own synthetic data set,
validation split and training randomness; the verdicts come from paired differences over the seeds.

    pcpeft demo --seeds 5

Rows are the demo's (:data:`pcpeft.experiments.demo.RUNS`), each with its learning rate; the epoch is chosen on the
validation split of every run, and the test split chooses nothing.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from ..engine.runs.json_files import write_json
from .demo import RUNS, SIZES, verified_backbone
from .grid import Resources, SweepSpec
from .sweep import run_sweep
from .table import Table, build_table, markdown, write_table

LOG = logging.getLogger("pcpeft")
#: the row names of the demo's table in the sweep (folder names)
ROW_NAMES = {("full", "scratch"): "full_scratch", ("full", "pretrained"): "full", ("linear", "pretrained"): "linear",
             ("ssf", "pretrained"): "ssf", ("adapter_x", "pretrained"): "adapter_x"}
PEFT_ROWS = ("ssf", "adapter_x")


def demo_spec(out: Path, size: str, seeds: int, backbone: Path, amp: bool = False) -> SweepSpec:
    """The demo's rows x ``seeds`` as a sweep (each seed with its own data set under ``out``)."""
    cfg = SIZES[size]
    rows = [{"name": ROW_NAMES[(method, init)], "peft": method, "optimizer.lr": lr,
             "ckpts": str(backbone) if init == "pretrained" else None} for _, method, init, lr in RUNS]
    seed_values = [{"name": seed, "seed": seed, "dataset.generator_seed": seed, "dataset.val_seed": seed,
                    "dataset.root": str(out / f"synthetic_demo_seed{seed}")} for seed in range(seeds)]
    opts = [f"dataset.train_per_class={cfg['train_per_class']}", f"dataset.test_per_class={cfg['test_per_class']}",
            "dataset.val_fraction=0.25", f"scheduler.epochs={cfg['epochs']}",
            f"scheduler.warmup_epochs={min(2, cfg['epochs'] - 1)}", f"train.batch_size={cfg['batch_size']}",
            "train.num_workers=0", "train.eval_every=1", f"train.amp_cpu={str(amp).lower()}"]
    return SweepSpec(recipes=["finetune_synthetic"], axes={"row": rows, "seed": seed_values}, opts=opts,
                     replicate="seed", resources=Resources(cpu=1, gpu=0))


def run_demo_seeds(out: str | Path, size: str = "default", seeds: int = 5, resume: bool = False,
                   amp: bool = False) -> dict:
    """Run the demo over ``seeds`` seeds into ``out/sweep``; returns the tables and the verdicts, also written to
    ``out/results_seeds.json`` and ``out/results_seeds.md``."""
    start = time.perf_counter()
    out = Path(out).resolve()
    backbone, sha = verified_backbone()
    spec = demo_spec(out, size, seeds, backbone, amp)
    outcome = run_sweep(spec, out / "sweep", resume=resume)
    against_scratch = build_table(out / "sweep", "val", {"row": "full_scratch"})
    against_full = build_table(out / "sweep", "val", {"row": "full"})
    write_table(against_scratch, out / "sweep")
    verdicts = demo_verdicts(against_scratch, against_full)
    text = "\n\n".join([markdown(against_scratch), "Paired against full fine-tuning of the same backbone:",
                        markdown(against_full), "Verdicts:", *[f"- {v['text']}" for v in verdicts]])
    summary = {"seeds": seeds, "size": size, "backbone_sha256": sha, "failed": outcome.failed,
               "seconds": time.perf_counter() - start, "verdicts": verdicts, "synthetic": True, "table": text}
    write_json(out / "results_seeds.json", summary)
    (out / "results_seeds.md").write_text(text + "\n")
    return summary


def demo_verdicts(against_scratch: Table, against_full: Table, near: float = 2.0) -> list[dict]:
    """PEFT above full fine-tuning from scratch (the paired interval above 0), and PEFT near full fine-tuning of
    the same backbone (the paired interval's lower end within ``near`` points), each stated with its numbers."""
    verdicts = []
    for name in PEFT_ROWS:
        above = _paired_of(against_scratch, name)
        if above is not None:
            holds = above.ci_low is not None and above.ci_low > 0
            verdicts.append({"claim": f"{name} above full fine-tuning from a random initialisation", "holds": holds,
                             "text": f"{name} {'is' if holds else 'is not shown to be'} above full fine-tuning from "
                                     f"scratch: {above.mean_diff:+.1f} points, 95% interval "
                                     f"[{_num(above.ci_low)}, {_num(above.ci_high)}], {above.test} p = "
                                     f"{_num(above.p_value, 3)}, n = {above.n}"})
        gap = _paired_of(against_full, name)
        if gap is not None:
            holds = gap.ci_low is not None and gap.ci_low >= -near
            verdicts.append({"claim": f"{name} within {near:g} points of full fine-tuning", "holds": holds,
                             "text": f"{name} {'is' if holds else 'is not shown to be'} within {near:g} points of "
                                     f"full fine-tuning of the same backbone: {gap.mean_diff:+.1f} points, 95% "
                                     f"interval [{_num(gap.ci_low)}, {_num(gap.ci_high)}], n = {gap.n}"})
    return verdicts


def _paired_of(table: Table, row_name: str):
    for row in table.rows:
        if row.cell.get("row") == row_name:
            return row.paired
    return None


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


__all__ = ["demo_spec", "demo_verdicts", "run_demo_seeds"]
