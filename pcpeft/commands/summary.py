"""``pcpeft summary``: a backbone's parameter summary and one forward pass on a random cloud."""
from __future__ import annotations

import argparse

from .vocabulary import add_ckpts, add_seed, positive_int

OPTION_ALIASES = {"--batch": "--batch_size"}
SUMMARY = "a backbone's parameters per module and one forward pass; --all: every point backbone with its GFLOPs"
EXAMPLES = """  pcpeft summary                      # point_mae, ScanObjectNN shapes (15 classes, 2048 points)
  pcpeft summary --model point_bert --num_classes 40 --num_group 64 --npoints 1024
  pcpeft summary --ckpts pretrain.pth  # also load a checkpoint and print its load report
  pcpeft summary --all"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    import pcpeft

    parser.add_argument("--model", default="point_mae", choices=pcpeft.list_models(), help="registered model name")
    parser.add_argument("--num_classes", type=positive_int, default=15, help="classes of the head")
    parser.add_argument("--num_group", type=positive_int, default=128, help="FPS groups (point tokens)")
    parser.add_argument("--group_size", type=positive_int, default=32, help="points per group")
    parser.add_argument("--npoints", type=positive_int, default=2048, help="points of the random cloud")
    parser.add_argument("--batch_size", type=positive_int, default=2, help="clouds of the forward pass")
    add_ckpts(parser, "checkpoint to load first (its load report is printed)")
    add_seed(parser)
    parser.add_argument("--all", action="store_true",
                        help="table of every point backbone (parameters, GFLOPs = multiply-adds per cloud)")


def point_classifiers() -> list[str]:
    """The registered point cloud classifiers (the segmentation networks have parts, not classes)."""
    import pcpeft

    from ..models.registry import model_options

    return [n for n in pcpeft.list_models() if {"num_group", "num_classes"} <= set(model_options(n))]


def run(args: argparse.Namespace) -> int:
    import torch

    import pcpeft

    from ..models.summary import backbone_table, summarize

    torch.manual_seed(args.seed)
    if args.all:
        print(backbone_table(point_classifiers(), args.num_classes, args.num_group, args.group_size, args.npoints))
        return 0
    model = pcpeft.create_model(args.model, num_classes=args.num_classes, num_group=args.num_group,
                                group_size=args.group_size)
    if args.ckpts:
        print(pcpeft.load_checkpoint(model, args.ckpts))
    print(summarize(model, torch.randn(args.batch_size, args.npoints, 3)))
    return 0
