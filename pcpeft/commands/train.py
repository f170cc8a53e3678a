"""``pcpeft train``: fine-tune a backbone with a PEFT method from a recipe."""
from __future__ import annotations

import argparse

from .vocabulary import add_amp, add_ckpts, add_config, add_device, add_opts, add_progress, add_seed, resolve_device

OPTION_ALIASES = {"--out": "!a run folder is <experiments>/<recipe>/<exp_name>: set --experiments and --exp_name"}
SUMMARY = "fine-tune a backbone with a PEFT method (or fully) from a recipe; writes a run folder"
EXAMPLES = """  pcpeft train --config finetune_synthetic --ckpts pcpeft/assets/demo_backbone.safetensors \\
      --peft adapter_x --exp_name ax
  pcpeft train --config finetune_synthetic --peft adapter_x --exp_name ax --resume
  pcpeft train --config finetune_scan_hardest --ckpts pretrain.pth --peft dapt --exp_name dapt   # PB_T50_RS
  pcpeft train --config official_repo/cfgs/finetune_scan_hardest.yaml --ckpts pretrain.pth   # an official recipe
  torchrun --nproc_per_node 4 -m pcpeft train --config ... --device cuda                      # multi-GPU (DDP)

A run lands in <experiments>/<recipe>/<exp_name>/: config.yaml, log.txt, tb/, ckpt-last.pth, ckpt-best.pth
(+ adapter-best/ for PEFT runs), results.json. A folder that holds a run is never reused silently: --resume
continues it, --overwrite moves it aside first."""


def parse_peft(value: str | None):
    """``adapter_x`` or ``ssf,smoa`` (a composition); None: the recipe's ``peft``."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 else parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config(parser)
    add_ckpts(parser, "pre-trained backbone file (official Point-MAE / Point-BERT / ACT / ReCon / PointGPT files, a "
                      "pcpeft pre-training, or the shipped pcpeft/assets/demo_backbone.safetensors); without it the "
                      "backbone starts from a random initialisation")
    parser.add_argument("--peft", default=None, metavar="METHOD",
                        help="method or preset (adapter_x, ssf, dapt, ...; a,b composes; `pcpeft list methods`); "
                             "default: the recipe's peft, else full fine-tuning")
    parser.add_argument("--exp_name", default="default", help="run folder name inside <experiments>/<recipe>/")
    parser.add_argument("--experiments", default="experiments", metavar="DIR", help="root folder of run folders")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run from its ckpt-last.pth. A run that has finished all its epochs is "
                             "left unchanged: exit status 0 and one line 'already finished ... results.json "
                             "unchanged'. A larger scheduler.epochs extends a finished run only when that is exactly "
                             "a longer run (the learning rates of the epochs it ran stay those of the longer "
                             "schedule); otherwise it is refused with exit status 2")
    parser.add_argument("--overwrite", action="store_true",
                        help="move a previous run in the same folder aside (to <name>.replaced-<time>) and start anew")
    parser.add_argument("--allow_partial_load", action="store_true",
                        help="train even when keys of --ckpts do not fit the model (default: stop and list them; a "
                             "head of another class count is always dropped and logged)")
    add_seed(parser)
    parser.add_argument("--deterministic", action="store_true", help="torch deterministic algorithms")
    add_device(parser)
    add_amp(parser)
    add_opts(parser)
    add_progress(parser)


def run(args: argparse.Namespace) -> int:
    from ..engine.training.distributed import cleanup
    from ..engine.training.finetune import RunOptions, train
    from .recipe_input import load_recipe

    amp_opts = ["train.amp=true", "train.amp_cpu=true"] if args.amp else []
    recipe = load_recipe(args.config, [*args.opts, *amp_opts])
    extra = {"official_recipe.yaml": recipe.official_text} if recipe.official_text is not None else {}
    options = RunOptions(config_path=str(recipe.path), ckpts=args.ckpts, peft=parse_peft(args.peft),
                         exp_name=args.exp_name, resume=args.resume, overwrite=args.overwrite,
                         allow_partial_load=args.allow_partial_load, seed=args.seed, deterministic=args.deterministic,
                         device=resolve_device(args.device), experiments_root=args.experiments, extra_files=extra)
    try:
        results = train(recipe.config, options)
    finally:
        cleanup()
    print(results.get("already_finished") or result_line(results))
    return 0


def result_line(results: dict) -> str:
    """One line: the last and the best epoch's test score and which split chose the best one."""
    last, best = results["last"] or {}, results["best"] or {}
    score, name = ("instance_miou", "instance mIoU") if results.get("task") == "partseg" else ("overall_acc", "acc")

    def fmt(value):
        return "n/a" if value is None else f"{value:.2f}%"

    return (f"last epoch: test {name} {fmt(last.get(score))} | best epoch {best.get('epoch')}: test {name} "
            f"{fmt(best.get(score))} (epoch selected on the {results.get('best_chosen_on', 'test')} split)")
