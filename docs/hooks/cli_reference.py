"""mkdocs hook: the flag tables of ``cli.md``, generated at build time from the ``pcpeft`` argument parser
(``pcpeft.commands.build_parser``), so every flag listed is a flag the command accepts, with its default and help.

``<!-- cli-reference -->`` becomes one table per subcommand (and per direction of ``convert``). When the command
package cannot be imported, the placeholder becomes a note saying so and the build goes on (logged at info level).
"""
from __future__ import annotations

import argparse
import logging

from hook_support import cell, import_checkout
from mkdocs.exceptions import PluginError

LOG = logging.getLogger("mkdocs.hooks.cli_reference")

PLACEHOLDER = "<!-- cli-reference -->"
PAGE = "cli.md"


def code_cell(text) -> str:
    """Text for a code span in a table cell (a pipe inside a code span does not split the cell)."""
    return str(text)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser`` by name (aliases left out)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen, out = set(), {}
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    out[name] = sub
            return out
    return {}


def flag_table(parser: argparse.ArgumentParser) -> str:
    rows = ["| argument | default | meaning |", "| --- | --- | --- |"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or (("{" + ",".join(map(str, action.choices)) + "}") if action.choices
                                             else action.dest.upper())
                if action.nargs in ("*", "+"):
                    metavar = f"{metavar} ..."
                elif action.nargs == "?":
                    metavar = f"[{metavar}]"
                name = f"{name} {metavar}"
        else:
            name = action.metavar or action.dest
            if action.nargs in ("*", "+"):
                name = f"{name} ..."
            elif action.nargs == "?":
                name = f"[{name}]"
        default = action.default
        if action.nargs == 0 or default in (None, argparse.SUPPRESS) or default == []:
            default_text = ""
        else:
            default_text = f"`{' '.join(map(str, default)) if isinstance(default, list) else default}`"
        meaning = action.help or ""
        if action.choices and action.option_strings and "{" not in name:
            meaning = f"{meaning} (one of: {', '.join(map(str, action.choices))})".strip()
        rows.append(f"| `{code_cell(name)}` | {code_cell(default_text)} | {cell(meaning)} |")
    return "\n".join(rows)


def reference() -> str:
    from pcpeft.commands import build_parser

    parser = build_parser()
    out = []
    for name, sub in subparsers(parser).items():
        out.append(f"### `pcpeft {name}`\n\n{cell(sub.description or '')}\n\n{flag_table(sub)}")
        for direction, inner in subparsers(sub).items():
            out.append(f"#### `pcpeft {name} {direction}`\n\n{cell(inner.description or '')}\n\n{flag_table(inner)}")
    return "\n\n".join(out) + "\n"


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    import_checkout(config)
    if PLACEHOLDER not in markdown:
        raise PluginError(f"{PAGE} lost its placeholder {PLACEHOLDER}")
    try:
        text = reference()
    except ImportError as err:
        LOG.info(f"{PAGE}: the command package cannot be imported ({err}); flag tables left out")
        text = ("!!! note\n    The flag tables are generated from the installed `pcpeft` command, which could not "
                "be imported when this page was built; `pcpeft COMMAND --help` prints them.\n")
    return markdown.replace(PLACEHOLDER, text)
