"""Fine-tune a point backbone with a PEFT method (flags follow the Point-MAE CLI).

Examples (each runs as written on the embedded demo data, no download):
    python tools/train.py --config cfgs/finetune_synthetic.yaml --peft adapter_x --exp_name ax
    python tools/train.py --config cfgs/finetune_synthetic.yaml --peft adapter_x --exp_name ax --resume
    python tools/train.py --config cfgs/finetune_scan_hardest.yaml --ckpts pretrain.pth --peft adapter_x --exp_name ax
    torchrun --nproc_per_node 4 tools/train.py --config ... --device cuda      # multi-GPU (DDP)

Everything lands in experiments/<recipe path below cfgs/>/<exp_name>/: config.yaml, log.txt, tb/, ckpt-last.pth,
ckpt-best.pth (+ adapter-best/ for PEFT runs), results.json. A folder that holds a run is never reused silently:
--resume continues it, --overwrite moves it aside first. Errors print one line and exit 2 (--debug: traceback).
"""
from __future__ import annotations

import argparse
from pcpeft.cli import add_debug_flag, run_tool
from pcpeft.engine.config import apply_overrides, load_config


def parse_peft(value: str | None):
    """``adapter_x`` or ``ssf,smoa`` (a composition)."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else parts


def main() -> None:
    from pcpeft.engine.distributed import cleanup
    from pcpeft.engine.trainer import RunOptions, train

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe YAML (cfgs/...)")
    parser.add_argument("--ckpts", default=None, help="pretrained checkpoint (Point-MAE / Point-BERT / pcpeft)")
    parser.add_argument("--allow_partial_load", action="store_true",
                        help="train even when keys of --ckpts do not fit the model (default: stop and list them; a "
                             "head of another class count is always dropped and logged)")
    parser.add_argument("--peft", default=None, help="method or preset (adapter_x, ssf, ...; a,b composes); "
                                                     "default: the recipe's 'peft', else full fine-tuning")
    parser.add_argument("--exp_name", default="default", help="run folder name (relative, inside --experiments)")
    parser.add_argument("--resume", action="store_true", help="continue from the experiment's ckpt-last.pth")
    parser.add_argument("--overwrite", action="store_true",
                        help="move a previous run in the same folder aside (to <name>.replaced-<time>) and start anew")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deterministic", action="store_true", help="torch deterministic algorithms")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--experiments", default="experiments", help="root folder of experiment outputs")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")
    parser.add_argument("--opts", nargs="*", default=[], help="recipe overrides key.sub=value")
    parser.add_argument("--amp", action="store_true", help="mixed precision: CUDA fp16, or bf16 on a CPU with native "
                        "bf16 (train.amp=true train.amp_cpu=true; fp32 with a logged reason elsewhere)")
    add_debug_flag(parser)
    args = parser.parse_args()
    amp_opts = ["train.amp=true", "train.amp_cpu=true"] if args.amp else []
    config = apply_overrides(load_config(args.config), [*args.opts, *amp_opts])
    options = RunOptions(config_path=args.config, ckpts=args.ckpts, peft=parse_peft(args.peft),
                         exp_name=args.exp_name, resume=args.resume, overwrite=args.overwrite,
                         allow_partial_load=args.allow_partial_load, seed=args.seed, deterministic=args.deterministic,
                         device=args.device, experiments_root=args.experiments, progress=not args.no_progress)
    try:
        results = train(config, options)
    finally:
        cleanup()
    last, best = results["last"] or {}, results["best"] or {}
    score, name = ("instance_miou", "instance mIoU") if results.get("task") == "partseg" else ("overall_acc", "acc")
    fmt = lambda value: "n/a" if value is None else f"{value:.2f}%"  # noqa: E731
    print(f"last epoch: test {name} {fmt(last.get(score))} | best epoch {best.get('epoch')}: test {name} "
          f"{fmt(best.get(score))} (epoch selected on the {results.get('best_chosen_on', 'test')} split)")


if __name__ == "__main__":
    run_tool(main)
