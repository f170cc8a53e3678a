"""Run the same PEFT methods on one point cloud task and one image task with the same adapter code, and write
a side-by-side table (method, trainable % per modality, accuracy per modality, step time)."""
from __future__ import annotations

import json
from pathlib import Path

from .config import apply_overrides, load_config
from .trainer import RunOptions, train


def compare_modalities(methods: list[str], points_config: str, images_config: str, out: str | Path,
                       overrides_points: list[str] = (), overrides_images: list[str] = (),
                       ckpts_points: str | None = None, ckpts_images: str | None = None,
                       seed: int = 0, progress: bool = False) -> dict:
    out = Path(out)
    configs = {"points": (apply_overrides(load_config(points_config), overrides_points), points_config, ckpts_points),
               "images": (apply_overrides(load_config(images_config), overrides_images), images_config, ckpts_images)}
    rows = []
    for method in methods:
        row = {"method": method}
        for modality, (config, path, ckpts) in configs.items():
            result = train(config, RunOptions(config_path=path, ckpts=ckpts, peft=method, exp_name=method, seed=seed,
                                              experiments_root=str(out / modality), progress=progress))
            row[modality] = {"trainable_percent": result["trainable_percent"],
                             "last_acc": result["last"]["overall_acc"], "best_acc": result["best"]["overall_acc"],
                             "step_seconds": result["median_step_seconds"], "dataset": result["dataset"],
                             "synthetic": result["synthetic"], "pretrained": ckpts is not None}
        rows.append(row)
    table = comparison_markdown(rows)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table + "\n")
    (out / "comparison.json").write_text(json.dumps(rows, indent=2))
    return {"rows": rows, "table": table}


def comparison_markdown(rows: list[dict]) -> str:
    first = rows[0]
    head = (f"points: {first['points']['dataset']}{' (SYNTHETIC)' if first['points']['synthetic'] else ''}"
            f"{'' if first['points']['pretrained'] else ' from scratch'}; images: {first['images']['dataset']}"
            f"{'' if first['images']['pretrained'] else ' from scratch'}. Accuracy = last epoch (test split).")
    lines = [head, "", "| method | trainable % (3D) | trainable % (2D) | acc 3D | acc 2D | step 3D (s) | step 2D (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        p, i = r["points"], r["images"]
        lines.append(f"| {r['method']} | {p['trainable_percent']:.3f} | {i['trainable_percent']:.3f} | "
                     f"{p['last_acc']:.1f} | {i['last_acc']:.1f} | {p['step_seconds']:.3f} | {i['step_seconds']:.3f} |")
    return "\n".join(lines)
