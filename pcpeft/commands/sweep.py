"""``pcpeft sweep``: a grid of ordinary runs on Ray Tune (a local Ray instance by default, a cluster with
``--address``), resumable, one trial's failure recorded without stopping the others."""
from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from .vocabulary import OUT_IS_A_FILE, add_ckpts, add_config, add_device, add_opts, add_out_dir, resolve_device

OPTION_ALIASES = {"--out": OUT_IS_A_FILE}
SUMMARY = "run a grid of trials (methods x seeds x any recipe key) on Ray Tune; then `pcpeft table OUT_DIR`"
EXAMPLES = """  pcpeft sweep --config finetune_synthetic --grid peft=linear,ssf seed=0,1,2 optimizer.lr=1e-3,2e-3 \\
      --select optimizer.lr --opts dataset.val_fraction=0.25 --out_dir sweeps/demo
  pcpeft sweep sweeps/fewshot_modelnet40 --ckpts pretrain.pth --out_dir sweeps/fewshot   # a shipped sweep
  pcpeft sweep SWEEP.yaml --out_dir sweeps/x --resume          # after an interruption: reruns nothing finished
  pcpeft sweep SWEEP.yaml --out_dir sweeps/x --address ray://head:10001 --gpu 1   # on a Ray cluster
  pcpeft sweep SWEEP.yaml --out_dir sweeps/x --dry_run          # list the trials, run nothing

Each trial is an ordinary run folder OUT_DIR/<recipe>/<axis=value,...> (pcpeft test / predict / load_run work on
it). Exit status 2 when a trial failed (its one-line error is printed and kept in its failed.json)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", nargs="?", metavar="SWEEP",
                        help="a sweep YAML file or a shipped sweep name (sweeps/fewshot_modelnet40); or use --config "
                             "and --grid")
    add_config(parser, required=False, help_extra="; the recipe of every trial when no SWEEP file is given")
    parser.add_argument("--grid", nargs="*", default=[], metavar="KEY=V1,V2",
                        help="axes: peft, seed, recipe, ckpts, model or any recipe key, each with its values")
    parser.add_argument("--select", nargs="*", default=None, metavar="AXIS",
                        help="axes chosen per cell on the validation split (e.g. optimizer.lr); needs "
                             "dataset.val_fraction or a data set's own validation split")
    add_ckpts(parser, "the pre-trained backbone file of every trial")
    add_opts(parser)
    add_out_dir(parser, "the sweep's folder: one run folder per trial, sweep.yaml, sweep.json", required=True)
    parser.add_argument("--resume", action="store_true",
                        help="continue the sweep in --out_dir: finished trials are kept, interrupted ones resume from "
                             "their last checkpoint, failed and new ones start")
    parser.add_argument("--address", default=None,
                        help="an existing Ray cluster to join (ray://host:10001 or host:6379); default: a local Ray "
                             "instance with this machine's CPUs and GPUs")
    parser.add_argument("--cpu", type=float, default=None, help="CPU cores per trial (default: the sweep file's, or 1)")
    parser.add_argument("--gpu", type=float, default=None,
                        help="GPUs per trial (default: the sweep file's, or 1 when CUDA is used, else 0)")
    add_device(parser)
    parser.add_argument("--dry_run", action="store_true",
                        help="check every trial and list it with its state; run nothing (--ckpts files may be absent)")


def spec_from_args(args: argparse.Namespace):
    """The :class:`SweepSpec` the arguments describe (a file, or --config and --grid), with --opts, --select,
    --ckpts and the resources applied."""
    from ..engine.recipe.shipped import resolve_recipe
    from ..experiments.grid import SweepSpec, parse_grid, read_sweep_file

    if args.sweep and (args.config or args.grid):
        raise UsageError("give a SWEEP file, or --config with --grid, not both")
    if args.sweep:
        spec = read_sweep_file(resolve_recipe(args.sweep))
    elif args.config:
        spec = SweepSpec(recipes=[args.config], axes=parse_grid(args.grid))
    else:
        raise UsageError("give a SWEEP file, or --config RECIPE --grid KEY=V1,V2 ...")
    updates: dict = {"opts": [*spec.opts, *args.opts]}
    if args.select is not None:
        updates["select"] = args.select
    if args.ckpts:
        updates["ckpts"] = args.ckpts
    resources = spec.resources.model_copy(update={k: v for k, v in (("cpu", args.cpu), ("gpu", args.gpu))
                                                  if v is not None})
    return spec.model_copy(update={**updates, "resources": resources})


def run(args: argparse.Namespace) -> int:
    from ..experiments.sweep import plan_sweep, run_sweep

    spec = spec_from_args(args)
    if args.dry_run:
        plan = plan_sweep(spec, args.out_dir, check_files=False)
        print(plan.listing())
        print(f"{len(plan.trials)} trials ({sum(s == 'finished' for s in plan.states.values())} finished)")
        return 0
    device = resolve_device(args.device)
    if device == "cuda" and args.gpu is None and spec.resources.gpu == 0:
        spec = spec.model_copy(update={"resources": spec.resources.model_copy(update={"gpu": 1.0})})
    outcome = run_sweep(spec, args.out_dir, args.resume, args.address, device)
    for name, error in outcome.errors.items():
        print(f"error: trial {name}: {error}", file=sys.stderr)
    total = len(outcome.states)
    print(f"sweep: {total - outcome.failed} of {total} trials finished, {outcome.failed} failed; the table: "
          f"pcpeft table {args.out_dir}")
    return 2 if outcome.failed else 0
