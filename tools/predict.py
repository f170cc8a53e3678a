"""Classify point cloud files with a trained run, using the run's own preprocessing (FPS to its npoints, unit sphere).

Examples:
    python tools/predict.py experiments/finetune_folder/ax scan_001.ply scans/          # folders: recursive
    python tools/predict.py experiments/finetune_folder/ax scans/ --topk 3 --vote 10   # test.py's voting
    python tools/predict.py experiments/finetune_folder/ax scans/ --json > predictions.json

One line per file: "FILE: CLASS (PROB)", or the --topk classes with their probabilities; --json prints a list of
{"file", "class", "prob", "probs": {class: p}}. Formats: .ply .pcd .xyz .txt .pts .npy .off. A file that cannot be
read gets an "error: FILE: ..." line on stderr, the others are still classified, and the exit status is 2.
A PEFT run needs the backbone it was trained on: the file recorded in the run, or --backbone (sha256 checked).
"""
from __future__ import annotations

import argparse
import json
import sys

from pcpeft.cli import add_debug_flag, positive_int, run_tool

PROGRESS_FROM = 20  # files; fewer get no progress bar


def main() -> int:
    import torch

    from pcpeft.engine.file_predict import (FileFailure, classify_files, collect_files, run_preprocessing)
    from pcpeft.engine.runs import load_run
    from pcpeft.engine.schema import validate_recipe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="run folder written by tools/train.py (holds config.yaml, ckpt-best.pth)")
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_FOLDER", help="point cloud files or folders")
    parser.add_argument("--topk", type=positive_int, default=1, help="print the K most probable classes")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    parser.add_argument("--vote", type=int, default=0, metavar="N",
                        help="mean logits over N re-samples, as tools/test.py --vote (default 0: one pass)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the voting re-samples")
    parser.add_argument("--batch_size", type=positive_int, default=32)
    parser.add_argument("--backbone", default=None, help="pretrained file of a PEFT run (default: the recorded one)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_debug_flag(parser)
    args = parser.parse_args()
    if args.vote < 0:
        parser.error(f"--vote {args.vote}: use 0 (no voting) or a number of re-samples")

    model = load_run(args.run_dir, backbone=args.backbone, device=args.device, checkpoint=args.checkpoint)
    preprocessing = run_preprocessing(validate_recipe(model.run_config, f"{args.run_dir}/config.yaml"))
    files, failures = collect_files(args.inputs)
    progress = not args.no_progress and len(files) >= PROGRESS_FROM
    results = classify_files(model, files, preprocessing, torch.device(args.device), args.batch_size, args.vote,
                             args.seed, progress)
    names = model.class_names
    failures += [r for r in results if isinstance(r, FileFailure)]
    predictions = [r for r in results if not isinstance(r, FileFailure)]
    if args.json:
        print(json.dumps([p.as_json(names) for p in predictions], indent=2))
    else:
        for p in predictions:
            top = p.top(names, args.topk)
            shown = f"{top[0][0]} ({top[0][1]:.4f})" if args.topk == 1 else ", ".join(f"{c} {v:.4f}" for c, v in top)
            print(f"{p.file}: {shown}")
    for failure in failures:
        print(f"error: {failure.message}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(predictions) + len(failures)} inputs failed; {len(predictions)} classified",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run_tool(main)
