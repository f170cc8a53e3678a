"""The one flag vocabulary of every ``pcpeft`` subcommand: the same flag for the same thing, one spelling.

Options are spelled with underscores (``--exp_name``, ``--batch_size``), as in Point-MAE's command line; the
dashed spelling (``--exp-name``) is accepted as an alias everywhere. Flags that mean a checkpoint file are always
``--ckpts``; a run folder is always the positional ``RUN``; ``--out`` is always a file and ``--out_dir`` always a
folder; ``--vote N`` is the number of voting passes everywhere; ``--device`` defaults to ``auto``.

What users of the reference repositories type by habit (``--finetune_model``, ``--test``, ``--launcher``, ...)
gets a one-line answer saying what to write instead (:data:`HABITS`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from ..errors import UsageError

LOG = logging.getLogger("pcpeft")

#: flags of the reference repositories' ``main.py`` and what to write instead (None: accepted and ignored)
HABITS: dict[str, str] = {
    "--finetune_model": "pcpeft train fine-tunes by default: drop --finetune_model (give the pre-trained file with "
                        "--ckpts)",
    "--scratch_model": "training from a random initialisation is what pcpeft train does without --ckpts: drop "
                       "--scratch_model and --ckpts",
    "--test": "evaluate a run with `pcpeft test RUN [--vote N]` (RUN: the run folder), or an official fine-tuned "
              "file with `pcpeft test --config RECIPE --ckpts FILE`",
    "--launcher": "multi-GPU runs start with torchrun: `torchrun --nproc_per_node 4 -m pcpeft train ...`",
    "--local_rank": "multi-GPU runs start with torchrun, which sets the rank: drop --local_rank",
    "--sync_bn": "pcpeft's transformer backbones have no batch norm to synchronise: drop --sync_bn",
    "--start_ckpts": "continue a run with `pcpeft train --config RECIPE --exp_name NAME --resume`",
    "--val_freq": "evaluation frequency is the recipe key train.eval_every: --opts train.eval_every=N",
    "--way": "few-shot settings are recipe keys: --config fewshot --opts dataset.way=5 dataset.shot=10 "
             "dataset.fold=0 model.num_classes=5 (or the sweep sweeps/fewshot_modelnet40 for every fold)",
    "--shot": "few-shot settings are recipe keys: --opts dataset.shot=N (see --way)",
    "--fold": "few-shot folds are recipe keys: --opts dataset.fold=N (or the sweep sweeps/fewshot_modelnet40)",
    "--mode": "the ShapeNet difficulty modes of the reference main.py have no counterpart: pcpeft's data sets are "
              "chosen by the recipe's dataset section",
}

DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: the answer to ``--out`` on a command that writes a folder
OUT_IS_A_FILE = "!--out is always a file in pcpeft; a folder to write into is --out_dir"
PROGRESS_CHOICES = ("auto", "always", "never")
DEFAULT_VOTES = 10  # ``--vote`` without a number: Point-MAE's test_vote count


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions and examples as written, every default shown."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text, default = action.help or "", action.default
        if default is None or default is False or default is argparse.SUPPRESS or default == [] or "%(default)" in text:
            return text
        if action.option_strings and action.nargs != 0:
            return f"{text} (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that accepts the dashed spelling of every option and answers the reference
    repositories' habits with one line instead of 'unrecognized arguments'."""

    def __init__(self, *args, option_aliases: dict[str, str | None] | None = None, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        #: older spellings of this command's options: old -> new option, None (drop the flag, keep its value: it
        #: became a positional), or "!why" (refused with that reason)
        self.option_aliases: dict[str, str | None] = dict(option_aliases or {})

    def _known_options(self) -> set[str]:
        return {option for action in self._actions for option in action.option_strings}

    def normalise(self, argv: Sequence[str]) -> list[str]:
        """``--exp-name x`` -> ``--exp_name x`` where ``--exp_name`` is an option of this parser."""
        known, out = self._known_options(), []
        for index, item in enumerate(argv):
            if item == "--":
                out.extend(argv[index:])
                break
            if item.startswith("--") and len(item) > 2:
                name, equals, value = item.partition("=")
                underscored = "--" + name[2:].replace("-", "_")
                if name not in known and underscored in self.option_aliases:
                    alias = self.option_aliases[underscored]
                    if alias is not None and alias.startswith("!"):
                        self.error(f"{name}: {alias[1:]}")
                    if alias is None:
                        out.extend([value] if equals else [])
                        continue
                    name = underscored = alias
                if name not in known and underscored in known:
                    item = underscored + equals + value
                elif name == underscored:
                    item = name + equals + value
            out.append(item)
        return out

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self.normalise(args), namespace)

    def error(self, message: str):
        for habit, answer in HABITS.items():
            if habit in message or habit.replace("_", "-") in message:
                self.exit(2, f"{self.prog}: error: {habit}: {answer}\n")
        super().error(message)


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error "
                                                             "(also: PCPEFT_DEBUG=1)")


def add_config(parser: argparse.ArgumentParser, required: bool = True, help_extra: str = "") -> None:
    parser.add_argument("--config", required=required, metavar="RECIPE",
                        help="recipe: a YAML path or a shipped recipe name (finetune_synthetic, "
                             "pointgpt_l/finetune_scan_hardest; `pcpeft list recipes`); an official repository's "
                             "recipe file is translated (`pcpeft recipe FILE` shows how)" + help_extra)


def add_opts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="recipe overrides, e.g. train.batch_size=16 optimizer.lr=1e-3 (values parsed as YAML)")


def add_ckpts(parser: argparse.ArgumentParser, help_text: str, required: bool = False) -> None:
    parser.add_argument("--ckpts", required=required, metavar="FILE", help=help_text)


def add_run(parser: argparse.ArgumentParser, optional: bool = False) -> None:
    parser.add_argument("run", metavar="RUN", nargs="?" if optional else None,
                        help="run folder written by `pcpeft train` (experiments/<recipe>/<exp_name>)")


def add_out(parser: argparse.ArgumentParser, help_text: str, required: bool = False, default: str | None = None
            ) -> None:
    parser.add_argument("--out", required=required, default=default, metavar="FILE", help=help_text)


def add_out_dir(parser: argparse.ArgumentParser, help_text: str, default: str | None = None,
                required: bool = False) -> None:
    parser.add_argument("--out_dir", default=default, required=required, metavar="DIR", help=help_text)


def add_vote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vote", type=non_negative_int, nargs="?", const=DEFAULT_VOTES, default=0, metavar="N",
                        help=f"voting: mean logits over N augmented re-samples (Point-MAE's test_vote; --vote alone: "
                             f"{DEFAULT_VOTES}); 0: one pass")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help="auto: CUDA when a GPU is there, else the CPU (the log says which)")


def add_seed(parser: argparse.ArgumentParser, help_text: str = "random seed") -> None:
    parser.add_argument("--seed", type=int, default=0, help=help_text)


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", default="auto", choices=PROGRESS_CHOICES,
                        help="progress bars: auto shows them only on a terminal (logs and pipes get one line per "
                             "epoch)")
    parser.add_argument("--no_progress", dest="progress", action="store_const", const="never",
                        help="same as --progress never")


def add_amp(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision: CUDA fp16 (the recipes' train.amp), and bf16 on a CPU with native bf16 "
                             "(fp32 with a logged reason elsewhere)")


def add_checkpoint_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"],
                        help="which checkpoint of the run: the epoch results.json calls best, or the last one")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is available, else ``cpu``; ``cuda`` without one is a
    :class:`UsageError`. Logs the choice."""
    import torch

    available = torch.cuda.is_available()
    if name == "auto":
        chosen = "cuda" if available else "cpu"
        LOG.info(f"device: {chosen} (--device auto: {'a CUDA device is available' if available else 'no CUDA device'})")
        return chosen
    if name == "cuda" and not available:
        raise UsageError("--device cuda: no CUDA device is available to this torch "
                         f"({torch.__version__}); use --device cpu or auto")
    return name


def set_progress(mode: str) -> None:
    """Apply ``--progress`` to every progress bar of this process (:mod:`pcpeft.progress`)."""
    from .. import progress

    progress.set_mode(mode)


__all__ = ["HABITS", "Parser", "add_amp", "add_checkpoint_choice", "add_ckpts", "add_config", "add_debug",
           "add_device", "add_opts", "add_out", "add_out_dir", "add_progress", "add_run", "add_seed", "add_vote",
           "non_negative_int", "positive_int", "resolve_device", "set_progress"]
