"""Point-MAE masked-autoencoder pre-training on your own data; the checkpoint is what --ckpts accepts.

Examples:
    python tools/pretrain.py --config cfgs/pretrain_synthetic.yaml --out experiments/pretrain_synthetic
    python tools/pretrain.py --config cfgs/pretrain_synthetic.yaml --out experiments/pretrain_synthetic --resume
    python tools/train.py --config cfgs/finetune_synthetic.yaml --ckpts experiments/pretrain_synthetic/ckpt-last.pth

A folder that holds a pre-training is never reused silently: --resume continues it (bit-identically on CPU),
--overwrite moves it aside first. Errors print one line and exit 2 (--debug: traceback).
"""
from __future__ import annotations

import argparse
import logging

from pcpeft.cli import add_debug_flag, run_tool
from pcpeft.engine.config import apply_overrides, load_config


def main() -> None:
    from pcpeft.engine.pretrain import pretrain

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, help="output folder (config.yaml, ckpt-last.pth)")
    parser.add_argument("--resume", action="store_true", help="continue the pre-training in --out")
    parser.add_argument("--overwrite", action="store_true", help="move a previous pre-training in --out aside")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument("--opts", nargs="*", default=[])
    add_debug_flag(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    path = pretrain(apply_overrides(load_config(args.config), args.opts), args.out, args.seed, args.device,
                    progress=not args.no_progress, resume=args.resume, overwrite=args.overwrite)
    print(f"pre-trained checkpoint: {path}")


if __name__ == "__main__":
    run_tool(main)
