"""Fine-tune a point backbone with a PEFT method (flags follow the Point-MAE CLI).

    python tools/train.py --config cfgs/finetune_scan_hardest.yaml --ckpts pretrain.pth --peft adapter_x --exp_name ax
    python tools/train.py --config cfgs/finetune_scan_hardest.yaml --ckpts pretrain.pth --peft adapter_x --exp_name ax --resume
    torchrun --nproc_per_node 4 tools/train.py --config ... --device cuda      # multi-GPU (DDP)

Everything lands in experiments/<config name>/<exp_name>/: config.yaml, log.txt, tb/, ckpt-last.pth,
ckpt-best.pth (+ adapter-best/ for PEFT runs), results.json.
"""
from __future__ import annotations

import argparse

from pcpeft.engine.config import apply_overrides, load_config
from pcpeft.engine.distributed import cleanup
from pcpeft.engine.trainer import RunOptions, train


def parse_peft(value: str | None):
    """``adapter_x`` or ``ssf,smoa`` (a composition)."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe YAML (cfgs/...)")
    parser.add_argument("--ckpts", default=None, help="pretrained checkpoint (Point-MAE / Point-BERT / pcpeft)")
    parser.add_argument("--peft", default=None, help="method or preset (adapter_x, ssf, ...; a,b composes); "
                                                     "default: the recipe's 'peft', else full fine-tuning")
    parser.add_argument("--exp_name", default="default")
    parser.add_argument("--resume", action="store_true", help="continue from the experiment's ckpt-last.pth")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true", help="torch deterministic algorithms")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--experiments", default="experiments", help="root folder of experiment outputs")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument("--opts", nargs="*", default=[], help="recipe overrides key.sub=value")
    args = parser.parse_args()
    config = apply_overrides(load_config(args.config), args.opts)
    options = RunOptions(config_path=args.config, ckpts=args.ckpts, peft=parse_peft(args.peft),
                         exp_name=args.exp_name, resume=args.resume, seed=args.seed, deterministic=args.deterministic,
                         device=args.device, experiments_root=args.experiments, progress=not args.no_progress)
    try:
        results = train(config, options)
    finally:
        cleanup()
    last, best = results["last"] or {}, results["best"] or {}
    print(f"last epoch: {last.get('overall_acc', float('nan')):.2f}% | best epoch {best.get('epoch')}: "
          f"{best.get('overall_acc', float('nan')):.2f}% (selected on the test split)")


if __name__ == "__main__":
    main()
