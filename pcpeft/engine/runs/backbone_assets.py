"""Shipped pre-trained backbones written from a run folder: the backbone tensors of a finished full-training run
(the classification head left out) as a safetensors file, with a JSON record beside it saying what it is, how it
was made and its sha256.

    python -m pcpeft.engine.runs.backbone_assets RUN_DIR OUT.safetensors --what "..." \
        --command "THE TRAINING COMMAND" --wall_time_seconds N

The tensors are the last epoch's (``ckpt-last.pth``; a pre-training run has no validation split to choose on),
stored in float16 by default (half the size; loading casts them to the model's float32).
Before anything is written the tensors are loaded into the run's own model with :func:`pcpeft.load_checkpoint`
and every backbone key must be accounted for (only the head absent).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from ...errors import UserError
from ...models.checkpoints import load_checkpoint_object, read_checkpoint_file
from ..recipe.schema import validate_recipe
from .loading import file_sha256, read_run_config


class AssetError(UserError):
    """A run folder cannot give a backbone asset (not finished, not full training, tensors that do not fit)."""


def backbone_tensors(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The backbone tensors of ``run_dir``'s last epoch without the classification head, contiguous, by key."""
    run_dir = Path(run_dir)
    checkpoint = run_dir / "ckpt-last.pth"
    if not checkpoint.is_file():
        raise AssetError(f"{checkpoint} is missing: the run in {run_dir} has not finished an epoch")
    payload = read_checkpoint_file(checkpoint)
    state = payload.get("base_model") if isinstance(payload, dict) else None
    if state is None:
        raise AssetError(f"{checkpoint} holds adapter tensors only: a backbone asset comes from a full-training run "
                         f"(--peft full)")
    head = f"{_model_of(run_dir).classifier_name}."
    return {key: value.contiguous() for key, value in state.items() if not key.startswith(head)}


def _model_of(run_dir: Path):
    """A fresh model built from the run's ``config.yaml`` (the architecture the tensors belong to)."""
    from ..training.model_setup import create_backbone

    config = read_run_config(run_dir)
    return create_backbone(validate_recipe({k: v for k, v in config.items() if k != "run"}, str(run_dir)))


def check_loads(tensors: dict[str, torch.Tensor], run_dir: Path, name: str) -> int:
    """Load ``tensors`` into the run's model; the number of tensors loaded, or :class:`AssetError` listing the
    keys not accounted for (anything but the absent head)."""
    report = load_checkpoint_object(_model_of(run_dir), tensors, name)
    if not report.ok:
        raise AssetError(f"{name}: the backbone tensors of {run_dir} do not load back into its model: "
                         + "; ".join(report.problems()[:6]))
    return len(report.loaded)


def machine_in_words() -> str:
    """CPU model, cores, intra-op threads, torch build and OS of this machine, in one line."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        model = names[0] if names else model
    return (f"{os.cpu_count()} CPU cores ({model}), {torch.get_num_threads()} intra-op thread(s) "
            f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), torch {torch.__version__}, "
            f"{platform.system()}")


DTYPES = {"float32": torch.float32, "float16": torch.float16}


def write_backbone_asset(run_dir: str | Path, out_file: str | Path, record: dict, dtype: str = "float16") -> dict:
    """Write ``run_dir``'s backbone (head left out) to ``out_file`` (safetensors, floating tensors in ``dtype``)
    and its record to ``out_file`` with ``.json``; returns the record: ``record`` plus the file name, the source
    run's seed, epochs and final test accuracy, the tensor and parameter counts, the dtype and the sha256 of the
    written file."""
    from safetensors.torch import save_file

    run_dir, out_file = Path(run_dir), Path(out_file)
    if out_file.suffix != ".safetensors":
        raise AssetError(f"{out_file}: a backbone asset is a .safetensors file")
    if dtype not in DTYPES:
        raise AssetError(f"dtype {dtype!r}: one of {', '.join(DTYPES)}")
    tensors = {key: value.to(DTYPES[dtype]) if value.is_floating_point() else value
               for key, value in backbone_tensors(run_dir).items()}
    loaded = check_loads(tensors, run_dir, str(out_file))
    results_file = run_dir / "results.json"
    if not results_file.is_file():
        raise AssetError(f"{results_file} is missing: the run in {run_dir} has not finished")
    results = json.loads(results_file.read_text())
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_file), metadata={"format": "pt"})
    out_file.chmod(0o644)  # a package file, readable by all (safetensors writes 0600)
    full = {"file": out_file.name, **record, "seed": results.get("seed"), "epochs": results.get("epochs_run"),
            "final_test_acc": (results.get("last") or {}).get("overall_acc"), "tensors": loaded,
            "parameters": sum(t.numel() for t in tensors.values()), "dtype": dtype,
            "sha256": file_sha256(out_file)}
    out_file.with_suffix(".json").write_text(json.dumps(full, indent=2) + "\n")
    return full


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a finished full-training run folder (tools/train.py --peft full)")
    parser.add_argument("out", help="the .safetensors file to write (its record goes beside it as .json)")
    parser.add_argument("--what", required=True, help="what the backbone is, in words")
    parser.add_argument("--command", required=True, help="the exact command that trained the run")
    parser.add_argument("--wall_time_seconds", type=float, required=True, help="that command's wall time")
    parser.add_argument("--cpu_time_seconds", type=float, default=None,
                        help="its CPU time (the measure that holds on a shared machine)")
    parser.add_argument("--machine", default=None, help="the machine it ran on, in words (default: this one)")
    parser.add_argument("--dtype", default="float16", choices=sorted(DTYPES), help="how the tensors are stored")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    record = {"what": args.what, "command": args.command,
              "asset_command": shlex.join(["python", "-m", "pcpeft.engine.runs.backbone_assets", *argv]),
              "wall_time_seconds": round(args.wall_time_seconds), "machine": args.machine or machine_in_words()}
    if args.cpu_time_seconds is not None:
        record["cpu_time_seconds"] = round(args.cpu_time_seconds)
    print(json.dumps(write_backbone_asset(args.run_dir, args.out, record, args.dtype), indent=2))


if __name__ == "__main__":
    from ...cli import run_tool

    run_tool(main)
