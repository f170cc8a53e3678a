"""Evaluate a fine-tuned model on a recipe's test split, in one pass or with voting.

    python tools/test.py --config cfgs/finetune_scan_hardest.yaml --ckpts experiments/.../ckpt-best.pth   # full FT
    python tools/test.py --config cfgs/finetune_scan_hardest.yaml --ckpts pretrain.pth --adapter experiments/.../adapter-best --vote
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pcpeft.engine.config import apply_overrides, load_config
from pcpeft.engine.distributed import cleanup, is_main_process
from pcpeft.engine.trainer import evaluate_run, load_for_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--ckpts", default=None, help="fine-tuned checkpoint, or the pretrained one with --adapter")
    parser.add_argument("--adapter", default=None, help="adapter folder written by save_pretrained (adapter-best/)")
    parser.add_argument("--vote", action="store_true", help="mean logits over --vote_times augmented re-samples")
    parser.add_argument("--vote_times", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None, help="write the results JSON here")
    parser.add_argument("--opts", nargs="*", default=[])
    args = parser.parse_args()
    config = apply_overrides(load_config(args.config), args.opts)
    device = torch.device(args.device)
    try:
        model = load_for_test(config, args.ckpts, args.adapter, device)
        results = evaluate_run(config, model, device, args.vote, args.vote_times, args.seed)
    finally:
        cleanup()
    if is_main_process():
        summary = {k: v for k, v in results.items() if k != "confusion_matrix"}
        print(json.dumps(summary, indent=2))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
