"""Print a backbone's parameter summary and run one forward pass on a random cloud.

    python tools/model_summary.py                      # point_mae, ScanObjectNN shapes (15 classes, 2048 pts)
    python tools/model_summary.py --model point_bert --num-classes 40 --num-group 64 --npoints 1024
    python tools/model_summary.py --ckpts pretrain.pth  # also load a checkpoint and print its load report
    python tools/model_summary.py --all                # every point backbone: parameters and GFLOPs per cloud
"""
from __future__ import annotations

import argparse

import torch

import pcpeft
from pcpeft.models.registry import model_options
from pcpeft.models.summary import backbone_table, summarize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="point_mae", choices=pcpeft.list_models())
    parser.add_argument("--num-classes", type=int, default=15)
    parser.add_argument("--num-group", type=int, default=128)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--npoints", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--ckpts", default=None, help="checkpoint to load (official Point-MAE/Point-BERT layouts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="store_true",
                        help="table of every point backbone (parameters, GFLOPs = multiply-adds per cloud)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    if args.all:
        names = [n for n in pcpeft.list_models() if "num_group" in model_options(n)]
        print(backbone_table(names, args.num_classes, args.num_group, args.group_size, args.npoints))
        return
    model = pcpeft.create_model(args.model, num_classes=args.num_classes, num_group=args.num_group,
                                group_size=args.group_size)
    if args.ckpts:
        print(pcpeft.load_checkpoint(model, args.ckpts))
    print(summarize(model, torch.randn(args.batch, args.npoints, 3)))


if __name__ == "__main__":
    main()
