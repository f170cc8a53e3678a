"""``pcpeft export``: a trained run for deployment, as ONNX (runs without PyTorch) or one safetensors file."""
from __future__ import annotations

import argparse
from pathlib import Path

from .vocabulary import add_checkpoint_choice, add_ckpts, add_out, add_run

OPTION_ALIASES = {"--backbone": "--ckpts"}
SUMMARY = "export a trained run to ONNX (FPS and kNN grouping included) or one safetensors file"
EXAMPLES = """  pcpeft export experiments/finetune_folder/ax --format onnx --out ax.onnx --verify
  pcpeft export experiments/finetune_folder/ssf --format safetensors --out ssf.safetensors --verify

SSF and LoRA are merged into the backbone weights first, so the exported model has no adapter cost; methods with
input-dependent layers (adapters, SMoA, prompts) are exported as they are. ONNX: the whole classifier from
normalised points (B, npoints, 3) to logits (B, classes), dynamic batch; class names and npoints in the metadata.
safetensors: weights and the model config in the metadata (pcpeft.export.load_exported reads it back)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run(parser)
    parser.add_argument("--format", required=True, choices=["onnx", "safetensors"], help="what to write")
    add_out(parser, "the file to write", required=True)
    parser.add_argument("--verify", action="store_true",
                        help="print the largest logit difference between PyTorch and the exported file")
    add_ckpts(parser, "the backbone file of a PEFT run when it is no longer where the run recorded it (sha256 "
                      "checked)")
    add_checkpoint_choice(parser)


def run(args: argparse.Namespace) -> int:
    from ..engine.recipe.schema import validate_recipe
    from ..engine.runs.loading import load_run
    from ..engine.runs.predict_files import run_preprocessing
    from ..export import export_onnx, export_safetensors, verify_onnx, verify_safetensors

    model = load_run(args.run, backbone=args.ckpts, checkpoint=args.checkpoint)
    settings = validate_recipe(model.run_config, f"{args.run}/config.yaml")
    preprocessing = run_preprocessing(settings)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "onnx":
        info = export_onnx(model, out, preprocessing.npoints, model.class_names)
    else:
        info = export_safetensors(model, out, settings.model, model.class_names, preprocessing.__dict__)
    merged = "merged into the backbone" if info["merged"] else "not mergeable, exported as they are"
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): methods {info['methods']} ({merged}), input (B, "
          f"{preprocessing.npoints}, 3) normalised points, {len(model.class_names)} classes")
    if args.verify:
        check = verify_onnx if args.format == "onnx" else verify_safetensors
        print(f"verify: max |logits PyTorch - {args.format}| = {check(model, out, preprocessing.npoints):.3g} "
              f"(random clouds, batches of 1 and 3)")
    return 0
