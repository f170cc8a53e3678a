"""Compare PEFT methods on a 3D and a 2D task with the same adapter modules; writes comparison.md / .json.

    python tools/compare_modalities.py --methods linear ssf adapter_x \
        --points_config cfgs/finetune_scan_hardest.yaml --points_ckpts pretrain.pth \
        --images_config cfgs/images/vtab_vit_base.yaml --images_ckpts ViT-B_16.npz
    python tools/compare_modalities.py   # embedded defaults: synthetic point set + digits, small models, scratch
"""
from __future__ import annotations

import argparse

from pcpeft.cli import add_debug_flag, run_tool
from pcpeft.engine.compare import compare_modalities

SMALL_POINTS = ["dataset.name=SyntheticDemo", "dataset.root=datasets/synthetic_demo", "dataset.npoints=512",
                "model.num_classes=12", "model.num_group=32", "model.group_size=16", "model.trans_dim=192",
                "model.encoder_dims=192", "model.depth=4", "model.num_heads=3", "scheduler.epochs=10",
                "scheduler.warmup_epochs=1", "train.num_workers=0", "optimizer.lr=1.0e-3"]
SMALL_IMAGES = ["model.depth=4", "scheduler.epochs=10", "scheduler.warmup_epochs=1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["linear", "full", "ssf", "adapter_x"])
    parser.add_argument("--points_config", default="cfgs/finetune_scan_objbg.yaml")
    parser.add_argument("--images_config", default="cfgs/images/digits_vit_tiny.yaml")
    parser.add_argument("--points_ckpts", default=None)
    parser.add_argument("--images_ckpts", default=None)
    parser.add_argument("--points_opts", nargs="*", default=None, help="overrides (default: the small synthetic set)")
    parser.add_argument("--images_opts", nargs="*", default=None)
    parser.add_argument("--out", default="experiments/compare_modalities")
    parser.add_argument("--seed", type=int, default=0)
    add_debug_flag(parser)
    args = parser.parse_args()
    points_opts = SMALL_POINTS if args.points_opts is None and args.points_ckpts is None else (args.points_opts or [])
    images_opts = SMALL_IMAGES if args.images_opts is None and args.images_ckpts is None else (args.images_opts or [])
    result = compare_modalities(args.methods, args.points_config, args.images_config, args.out, points_opts,
                                images_opts, args.points_ckpts, args.images_ckpts, args.seed, progress=True)
    print(result["table"])
    print(f"\nwritten to {args.out}/comparison.md and comparison.json")


if __name__ == "__main__":
    run_tool(main)
