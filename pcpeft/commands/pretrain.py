"""``pcpeft pretrain``: Point-MAE masked-autoencoder pre-training on your own data."""
from __future__ import annotations

import argparse

from .vocabulary import (
    OUT_IS_A_FILE,
    add_config,
    add_device,
    add_opts,
    add_out_dir,
    add_progress,
    add_seed,
    resolve_device,
)

OPTION_ALIASES = {"--out": OUT_IS_A_FILE}
SUMMARY = "pre-train a Point-MAE backbone as a masked autoencoder; the checkpoint is what --ckpts accepts"
EXAMPLES = """  pcpeft pretrain --config pretrain_synthetic --out_dir experiments/pretrain_synthetic
  pcpeft pretrain --config pretrain_synthetic --out_dir experiments/pretrain_synthetic --resume
  pcpeft train --config finetune_synthetic --ckpts experiments/pretrain_synthetic/ckpt-last.pth

A folder that holds a pre-training is never reused silently: --resume continues it (bit-identically on CPU),
--overwrite moves it aside first."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    add_out_dir(parser, "the pre-training's folder (config.yaml, log, ckpt-last.pth)", required=True)
    parser.add_argument("--resume", action="store_true", help="continue the pre-training in --out_dir")
    parser.add_argument("--overwrite", action="store_true", help="move a previous pre-training in --out_dir aside")
    add_seed(parser)
    add_device(parser)
    add_opts(parser)
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    from ..engine.training.pretrain import pretrain
    from .recipe_input import load_recipe

    recipe = load_recipe(args.config, args.opts)
    path = pretrain(recipe.config, args.out_dir, args.seed, resolve_device(args.device), progress=True,
                    resume=args.resume, overwrite=args.overwrite)
    print(f"pre-trained checkpoint: {path}")
    return 0
