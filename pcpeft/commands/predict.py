"""``pcpeft predict``: classify point cloud files with a trained run, using the run's own preprocessing."""
from __future__ import annotations

import argparse
import json
import sys

from .vocabulary import (
    add_checkpoint_choice,
    add_ckpts,
    add_device,
    add_progress,
    add_run,
    add_seed,
    add_vote,
    positive_int,
    resolve_device,
)

OPTION_ALIASES = {"--backbone": "--ckpts", "--batch": "--batch_size"}
SUMMARY = "classify point cloud files or folders with a trained run (FPS to its npoints, unit sphere, as trained)"
EXAMPLES = """  pcpeft predict experiments/finetune_folder/ax scan_001.ply scans/          # folders: recursive
  pcpeft predict experiments/finetune_folder/ax scans/ --topk 3 --vote 10
  pcpeft predict experiments/finetune_folder/ax scans/ --json > predictions.json

One line per file: "FILE: CLASS (PROB)", or the --topk classes with their probabilities; --json prints a list of
{"file", "class", "prob", "probs": {class: p}}. Formats: .ply .pcd .xyz .txt .pts .npy .off. A file that cannot
be read gets an "error: FILE: ..." line on stderr, the others are still classified, and the exit status is 2."""

PROGRESS_FROM = 20  # files; fewer get no progress bar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run(parser)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_FOLDER", help="point cloud files or folders")
    parser.add_argument("--topk", type=positive_int, default=1, help="print the K most probable classes")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    add_vote(parser)
    add_seed(parser, "seed of the voting re-samples")
    parser.add_argument("--batch_size", type=positive_int, default=32, help="clouds per forward pass")
    add_ckpts(parser, "the backbone file of a PEFT run when it is no longer where the run recorded it (sha256 "
                      "checked)")
    add_checkpoint_choice(parser)
    add_device(parser)
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine.recipe.schema import validate_recipe
    from ..engine.runs.loading import load_run
    from ..engine.runs.predict_files import FileFailure, classify_files, collect_files, run_preprocessing

    device = resolve_device(args.device)
    model = load_run(args.run, backbone=args.ckpts, device=device, checkpoint=args.checkpoint)
    preprocessing = run_preprocessing(validate_recipe(model.run_config, f"{args.run}/config.yaml"))
    files, failures = collect_files(args.inputs)
    results = classify_files(model, files, preprocessing, torch.device(device), args.batch_size, args.vote,
                             args.seed, len(files) >= PROGRESS_FROM)
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
