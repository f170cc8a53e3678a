"""``pcpeft test``: evaluate a run (rebuilt from its own config.yaml and recorded backbone), or a checkpoint that
is not a pcpeft run (an official fine-tuned file) against a recipe."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from ..errors import UsageError
from .vocabulary import (
    add_amp,
    add_checkpoint_choice,
    add_ckpts,
    add_config,
    add_device,
    add_opts,
    add_out,
    add_run,
    add_seed,
    add_vote,
    resolve_device,
)

LOG = logging.getLogger("pcpeft")

OPTION_ALIASES = {"--vote_times": "--vote", "--backbone": "--ckpts"}
SUMMARY = "evaluate a run on its test split (one pass or voting), or an official fine-tuned file with --config"
EXAMPLES = """  pcpeft test experiments/finetune_synthetic/ax
  pcpeft test experiments/finetune_synthetic/ax --vote 10 --out test_vote.json
  pcpeft test experiments/finetune_scan_hardest/dapt --ckpts moved/pretrain.pth   # the backbone file moved
  pcpeft test --config finetune_scan_hardest --ckpts scan_hardest.pth --vote 10     # Point-MAE's released file

With RUN nothing is retyped: the model, the data set and every override come from RUN/config.yaml, and a PEFT
run's backbone from the file it recorded (sha256 checked)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run(parser, optional=True)
    add_vote(parser)
    add_checkpoint_choice(parser)
    add_ckpts(parser, "with RUN: the backbone file of a PEFT run when it is no longer where the run recorded it "
                      "(sha256 checked); with --config: a fine-tuned file, or the pre-trained one with --adapter")
    add_config(parser, required=False, help_extra="; only without RUN, to evaluate a checkpoint that is not a "
                                                  "pcpeft run")
    parser.add_argument("--adapter", metavar="DIR", default=None,
                        help="with --config: an adapter folder written by save_pretrained (a run's adapter-best/)")
    add_opts(parser)
    add_seed(parser, "seed of the voting re-samples")
    add_device(parser)
    add_amp(parser)
    add_out(parser, "also write the results (with the confusion matrix) to this JSON file")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..engine.recipe.schema import validate_recipe
    from ..engine.runs.json_files import write_json
    from ..engine.runs.loading import load_run
    from ..engine.training.distributed import cleanup, is_main_process
    from ..engine.training.finetune import evaluate_run, load_for_test
    from ..engine.training.precision import log_precision, select_precision

    if args.run and args.config:
        raise UsageError(f"give RUN ({args.run}) or --config, not both: a run is evaluated with its own config.yaml")
    if not args.run and not args.config:
        raise UsageError("give the run folder to evaluate (pcpeft test RUN), or --config RECIPE --ckpts FILE")
    if args.run and (args.opts or args.adapter):
        raise UsageError(f"{args.run}: a run is evaluated with its own config.yaml; --opts and --adapter go with "
                         f"--config only")
    device = torch.device(resolve_device(args.device))
    precision = log_precision(select_precision(device, args.amp, args.amp))
    try:
        if args.run:
            model = load_run(args.run, backbone=args.ckpts, device=device, checkpoint=args.checkpoint)
            settings = validate_recipe(model.run_config, str(Path(args.run) / "config.yaml"))
        else:
            from .recipe_input import load_recipe

            recipe = load_recipe(args.config, args.opts)
            settings = validate_recipe(recipe.config, str(recipe.path))
            model = load_for_test(settings, args.ckpts, args.adapter, device)
        with precision.autocast():
            results = evaluate_run(settings, model, device, args.vote > 0, max(args.vote, 1), args.seed)
    finally:
        cleanup()
    if is_main_process():
        results = {"run": str(args.run) if args.run else None, "checkpoint": args.checkpoint if args.run else None,
                   "device": str(device), **results}
        print(json.dumps({k: v for k, v in results.items() if k != "confusion_matrix"}, indent=2))
        if args.out:
            write_json(Path(args.out), results)
    return 0
