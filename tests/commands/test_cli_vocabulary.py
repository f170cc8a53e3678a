"""One flag vocabulary: every subcommand's parser is walked; two spellings of one option, an argument without help,
a --device that does not default to auto, or an option whose meaning differs between commands fail here."""
from __future__ import annotations

import argparse
import re

import pytest

from pcpeft.commands import COMMANDS, build_parser, main
from pcpeft.commands.vocabulary import Parser

#: pairs that are one thing spelled twice (the second must not exist anywhere)
SYNONYMS = {"--batch": "--batch_size", "--backbone": "--ckpts", "--vote_times": "--vote", "--out_file": "--out",
            "--output": "--out", "--output_dir": "--out_dir", "--experiment": "--run", "--dataset": "--config",
            "--checkpoint_file": "--ckpts", "--no_progress_bar": "--progress", "--file": "FILE"}
#: options whose kind of value is fixed everywhere (metavar)
KINDS = {"--out": "FILE", "--out_dir": "DIR", "--ckpts": "FILE", "--config": "RECIPE", "--vote": "N",
         "--opts": "KEY=VALUE"}


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) of every subcommand, nested ones (convert to-pcpeft) included."""
    found = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        found.append((prefix, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(f"{prefix} {name}".strip(), sub)

    walk("", build_parser())
    return found


PARSERS = all_parsers()


def test_every_command_of_the_tools_is_a_subcommand():
    names = {path for path, _ in PARSERS}
    for command in ("train", "test", "predict", "export", "pretrain", "demo", "viz", "bench", "convert", "prepare",
                    "compare", "list", "recipe", "summary", "params", "convert to-pcpeft", "convert to-official"):
        assert command in names
    assert set(COMMANDS) <= names


@pytest.mark.parametrize("path,parser", PARSERS, ids=[p or "pcpeft" for p, _ in PARSERS])
def test_one_spelling_help_everywhere_and_device_auto(path, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        longs = [o for o in action.option_strings if o.startswith("--")]
        assert action.help, f"pcpeft {path}: {action.option_strings or action.dest} has no help text"
        if not action.option_strings:
            continue
        assert action.dest == "progress" or len(longs) == 1, f"pcpeft {path}: {longs} are two spellings of one option"
        option = longs[0]
        assert re.fullmatch(r"--[a-z0-9]+(_[a-z0-9]+)*", option), f"pcpeft {path}: {option} is not spelled like --a_b"
        assert option not in SYNONYMS, f"pcpeft {path}: {option} is spelled {SYNONYMS[option]} everywhere else"
        if option in KINDS and action.nargs != 0:
            assert action.metavar == KINDS[option], f"pcpeft {path}: {option} takes {action.metavar}, not " \
                                                    f"{KINDS[option]} as everywhere else"
        if option == "--device":
            assert action.default == "auto", f"pcpeft {path}: --device defaults to {action.default!r}"
    if path and isinstance(parser, Parser) and " " not in path and path not in ("list",):
        assert "examples:" in (parser.epilog or ""), f"pcpeft {path} --help ends with no example"


def test_help_shows_defaults_and_ends_with_an_example(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert "(default: auto)" in out and "(default: experiments)" in out
    assert out.rstrip().splitlines()[-1].strip()  # the examples close the help
    assert "examples:" in out and out.index("examples:") > out.index("--debug")


@pytest.mark.parametrize("argv,answer", [
    (["train", "--finetune_model", "--config", "x"], "drop --finetune_model"),
    (["train", "--scratch_model", "--config", "x"], "omit"),
    (["train", "--test", "--config", "x"], "pcpeft test RUN"),
    (["train", "--launcher", "pytorch", "--config", "x"], "torchrun"),
    (["demo", "--out", "x"], "--out_dir"),
    (["pretrain", "--config", "x", "--out", "y"], "--out_dir"),
])
def test_reference_repository_habits_get_a_one_line_answer(argv, answer, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and "unrecognized arguments" not in err
    assert answer in err or answer.replace("omit", "drop") in err


def test_the_dashed_spelling_is_an_alias(capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--config", "x", "--exp-name", "a", "--allow-partial-load", "--no-progress"])
    assert args.exp_name == "a" and args.allow_partial_load and args.progress == "never"
    args = parser.parse_args(["params", "--num-classes=40", "--backbone", "point_bert"])
    assert args.num_classes == 40 and args.model == "point_bert"
    args = parser.parse_args(["test", "RUN", "--vote"])
    assert args.vote == 10
    args = parser.parse_args(["viz", "cloud", "--file", "c.ply", "--out", "c.png"])
    assert args.file == "c.ply"
