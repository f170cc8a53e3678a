"""Evaluate a fine-tuned model on a recipe's test split, in one pass or with voting.

Examples:
    python tools/test.py --config cfgs/finetune_synthetic.yaml --adapter experiments/finetune_synthetic/ax/adapter-best --vote
    python tools/test.py --config cfgs/finetune_scan_hardest.yaml --ckpts experiments/.../ckpt-best.pth   # full FT
    python tools/test.py --config cfgs/finetune_scan_hardest.yaml --ckpts pretrain.pth --adapter experiments/.../adapter-best

An adapter trained from a random initialisation needs no --ckpts: its run's record says so, and the backbone is
re-created and checked against the adapter's fingerprint. Every file is read as tensors only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pcpeft.cli import add_debug_flag, positive_int, run_tool
from pcpeft.engine.config import apply_overrides, load_config
from pcpeft.engine.precision import log_precision, select_precision


def main() -> None:
    import torch

    from pcpeft.engine.distributed import cleanup, is_main_process
    from pcpeft.engine.schema import validate_recipe
    from pcpeft.engine.trainer import evaluate_run, load_for_test, write_json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--ckpts", default=None, help="fine-tuned checkpoint, or the pretrained one with --adapter")
    parser.add_argument("--adapter", default=None, help="adapter folder written by save_pretrained (adapter-best/)")
    parser.add_argument("--vote", action="store_true", help="mean logits over --vote_times augmented re-samples")
    parser.add_argument("--vote_times", type=positive_int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None, help="write the results JSON here")
    parser.add_argument("--opts", nargs="*", default=[])
    parser.add_argument("--amp", action="store_true", help="autocast the evaluation: CUDA fp16, or bf16 on a CPU "
                        "with native bf16 (fp32 with a logged reason elsewhere)")
    add_debug_flag(parser)
    args = parser.parse_args()
    settings = validate_recipe(apply_overrides(load_config(args.config), args.opts), args.config)
    device = torch.device(args.device)
    precision = log_precision(select_precision(device, args.amp, args.amp))
    if args.amp:
        print(f"precision: {precision.reason}", file=sys.stderr)
    try:
        model = load_for_test(settings, args.ckpts, args.adapter, device)
        with precision.autocast():
            results = evaluate_run(settings, model, device, args.vote, args.vote_times, args.seed)
    finally:
        cleanup()
    if is_main_process():
        summary = {k: v for k, v in results.items() if k != "confusion_matrix"}
        print(json.dumps(summary, indent=2))
        if args.out:
            write_json(Path(args.out), results)


if __name__ == "__main__":
    run_tool(main)
