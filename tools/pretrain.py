"""Point-MAE masked-autoencoder pre-training on your own data; the checkpoint is what --ckpts accepts.

    python tools/pretrain.py --config cfgs/pretrain_demo.yaml --out experiments/pretrain_demo
    python tools/train.py --config cfgs/finetune_scan_objbg.yaml --ckpts experiments/pretrain_demo/ckpt-last.pth ...
"""
from __future__ import annotations

import argparse
import logging

from pcpeft.engine.config import apply_overrides, load_config
from pcpeft.engine.pretrain import pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, help="output folder (config.yaml, ckpt-last.pth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--opts", nargs="*", default=[])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    path = pretrain(apply_overrides(load_config(args.config), args.opts), args.out, args.seed, args.device)
    print(f"pre-trained checkpoint: {path}")


if __name__ == "__main__":
    main()
