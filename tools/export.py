"""Export a trained run for deployment: ONNX (runs without PyTorch) or one safetensors file (no pickles).

Examples:
    python tools/export.py experiments/finetune_folder/ax --format onnx --out ax.onnx --verify
    python tools/export.py experiments/finetune_folder/ssf --format safetensors --out ssf.safetensors --verify

SSF and LoRA are merged into the backbone weights first, so the exported model has no adapter cost; methods with
input-dependent layers (adapters, SMoA, prompts) are exported as they are. ONNX: the whole classifier from
normalised points (B, npoints, 3) to logits (B, classes), FPS and kNN grouping included, dynamic batch; the class
names and npoints are in the file's metadata. Input clouds must be preprocessed as in training (FPS to npoints,
unit sphere: pcpeft.datasets.point_folder.prepare_cloud). safetensors: weights + model config in the metadata,
read back with pcpeft.export.load_exported. --verify prints the largest logit difference between PyTorch and the
exported file on random clouds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pcpeft.cli import add_debug_flag, run_tool


def main() -> int:
    from pcpeft.engine.file_predict import run_preprocessing
    from pcpeft.engine.runs import load_run
    from pcpeft.engine.schema import validate_recipe
    from pcpeft.export import export_onnx, export_safetensors, verify_onnx, verify_safetensors

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run folder written by tools/train.py")
    parser.add_argument("--format", required=True, choices=["onnx", "safetensors"])
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--verify", action="store_true", help="compare PyTorch and the exported file on random clouds")
    parser.add_argument("--backbone", default=None, help="pretrained file of a PEFT run (default: the recorded one)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    add_debug_flag(parser)
    args = parser.parse_args()

    model = load_run(args.run_dir, backbone=args.backbone, checkpoint=args.checkpoint)
    settings = validate_recipe(model.run_config, f"{args.run_dir}/config.yaml")
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


if __name__ == "__main__":
    run_tool(main)
