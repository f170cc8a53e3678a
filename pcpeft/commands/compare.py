"""``pcpeft compare``: the same PEFT methods on a 3D and a 2D task with the same adapter code."""
from __future__ import annotations

import argparse

from .vocabulary import OUT_IS_A_FILE, add_out_dir, add_progress, add_seed, resolve_device

OPTION_ALIASES = {"--out": OUT_IS_A_FILE}
SUMMARY = ("the same PEFT methods on a point cloud task and an image task, with the same adapter code; one table "
           "(trainable %, accuracy, step time per modality)")
EXAMPLES = """  pcpeft compare                       # both modalities from the shipped pre-trained demo backbones
  pcpeft compare --methods linear ssf adapter_x \\
      --points_config finetune_scan_hardest --points_ckpts pretrain.pth \\
      --images_config images/vtab_vit_base --images_ckpts ViT-B_16.npz

Writes comparison.md and comparison.json (and every run folder) under --out_dir."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--methods", nargs="+", default=["linear", "full", "ssf", "adapter_x"], metavar="METHOD",
                        help="methods to compare")
    parser.add_argument("--points_config", default=None, metavar="RECIPE",
                        help="3D recipe (default: the synthetic demo set on the shipped demo backbone's model)")
    parser.add_argument("--images_config", default=None, metavar="RECIPE",
                        help="2D recipe (default: the digits on the shipped demo ViT's model)")
    parser.add_argument("--points_ckpts", default=None, metavar="FILE",
                        help="3D pre-trained file (default with the default recipe: the shipped demo backbone)")
    parser.add_argument("--images_ckpts", default=None, metavar="FILE",
                        help="2D pre-trained file (default with the default recipe: the shipped demo ViT)")
    parser.add_argument("--points_opts", nargs="*", default=None, metavar="KEY=VALUE", help="3D recipe overrides")
    parser.add_argument("--images_opts", nargs="*", default=None, metavar="KEY=VALUE", help="2D recipe overrides")
    add_out_dir(parser, "where the runs and comparison.md / .json go", default="experiments/compare")
    add_seed(parser)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="auto: CUDA when a GPU is there, else the CPU (the log says which)")
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    from ..experiments.modalities import compare_modalities, default_comparison

    defaults = default_comparison()
    points = defaults.points.with_overrides(args.points_config, args.points_ckpts, args.points_opts)
    images = defaults.images.with_overrides(args.images_config, args.images_ckpts, args.images_opts)
    result = compare_modalities(args.methods, points, images, args.out_dir, seed=args.seed,
                                device=resolve_device(args.device), progress=True)
    print(result["table"])
    print(f"\nwritten to {args.out_dir}/comparison.md and comparison.json")
    return 0
