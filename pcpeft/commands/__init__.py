"""The ``pcpeft`` command: one entry point, one subcommand a job, one flag vocabulary (:mod:`.vocabulary`).

    pcpeft train --config finetune_synthetic --ckpts pcpeft/assets/demo_backbone.safetensors --peft adapter_x
    pcpeft test experiments/finetune_synthetic/default --vote 10

Each subcommand is a module of this package with ``SUMMARY`` (one line), ``EXAMPLES`` (the end of its ``--help``),
``add_arguments(parser)`` and ``run(args)``. ``tools/*.py`` call :func:`main` with their subcommand.
"""
from __future__ import annotations

import importlib
import logging
import sys
from types import ModuleType
from typing import Sequence

from .vocabulary import Parser, add_debug, set_progress

#: subcommand -> module of this package, in the order ``pcpeft --help`` lists them
COMMANDS: dict[str, str] = {
    "train": "train", "test": "evaluate", "predict": "predict", "export": "export", "pretrain": "pretrain",
    "demo": "demo", "viz": "viz", "bench": "bench", "convert": "convert", "prepare": "prepare",
    "compare": "compare", "sweep": "sweep", "table": "table", "list": "listing", "recipe": "recipe",
    "summary": "summary", "params": "params", "report": "report",
}

DESCRIPTION = """pcpeft: parameter-efficient fine-tuning of point cloud transformers.

Errors print one line and exit with status 2 (--debug shows the traceback)."""

EPILOG = """examples:
  pcpeft demo
  pcpeft train --config finetune_synthetic --ckpts pcpeft/assets/demo_backbone.safetensors --peft adapter_x \\
      --exp_name ax
  pcpeft test experiments/finetune_synthetic/ax --vote 10
  pcpeft COMMAND --help"""


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name``."""
    return importlib.import_module(f"{__name__}.{COMMANDS[name]}")


def build_parser(prog: str = "pcpeft") -> Parser:
    """The whole ``pcpeft`` parser with every subcommand."""
    parser = Parser(prog=prog, description=DESCRIPTION, epilog=EPILOG)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"pcpeft {__version__}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for name in COMMANDS:
        module = command_module(name)
        sub = subparsers.add_parser(name, help=module.SUMMARY.replace("%", "%%"), description=module.SUMMARY,
                                    epilog=f"examples:\n{module.EXAMPLES}",
                                    option_aliases=getattr(module, "OPTION_ALIASES", None))
        module.add_arguments(sub)
        add_debug(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "pcpeft") -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand under the one-line error policy of
    :func:`pcpeft.cli.run_tool`, and exit with its status."""
    from ..cli import run_tool

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pcpeft").setLevel(logging.INFO)
    set_progress(getattr(args, "progress", "auto") or "auto")
    run_tool(lambda: args.handler(args), debug=args.debug or "--debug" in argv)


def tool_main(command: str) -> None:
    """What ``tools/<name>.py`` runs: ``pcpeft COMMAND`` with the script's arguments."""
    main([command, *sys.argv[1:]], prog="pcpeft")


__all__ = ["COMMANDS", "build_parser", "command_module", "main", "tool_main"]
