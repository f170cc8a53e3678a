"""mkdocs hook: the Python API reference of ``api.md``, generated at build time from the signatures and docstrings
of the public objects (``inspect``), so it cannot drift from the code.

``<!-- api-reference -->`` in the page becomes one section per entry of ``ENTRIES``: every name of
``pcpeft.__all__`` and of ``pcpeft.export.__all__``. A public name missing from ``ENTRIES`` is added at the end
with a warning (which fails ``mkdocs build --strict``), so a new export cannot go undocumented.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import re

from hook_support import import_checkout
from mkdocs.exceptions import PluginError

LOG = logging.getLogger("mkdocs.hooks.api_reference")

PLACEHOLDER = "<!-- api-reference -->"
PAGE = "api.md"

#: (section title, [(module, name), ...]) in the order of the page
ENTRIES: list[tuple[str, list[tuple[str, str]]]] = [
    ("Models", [("pcpeft", "create_model"), ("pcpeft", "list_models")]),
    ("Checkpoints", [("pcpeft", "load_checkpoint"), ("pcpeft", "LoadReport"), ("pcpeft", "CheckpointError")]),
    ("PEFT", [("pcpeft", "get_peft_model"), ("pcpeft", "PeftModel"), ("pcpeft", "PeftConfig")]),
    ("Runs", [("pcpeft", "load_run")]),
    ("Export (`pcpeft.export`)", [("pcpeft.export", "export_onnx"), ("pcpeft.export", "verify_onnx"),
                                  ("pcpeft.export", "onnx_unsupported_reason"),
                                  ("pcpeft.export", "export_safetensors"), ("pcpeft.export", "verify_safetensors"),
                                  ("pcpeft.export", "load_exported"), ("pcpeft.export", "deployable"),
                                  ("pcpeft.export", "random_clouds"), ("pcpeft.export", "ExportError")]),
    ("Version", [("pcpeft", "__version__")]),
]

#: what the page says of a public member that has no docstring of its own ("Class.member"); an entry whose member
#: no longer exists is reported as a warning
FALLBACK_DOCS: dict[str, str] = {
    "LoadReport.problems": "One line per problem: a key missing from the file, a key of the file the model does not "
                           "have, a shape mismatch. Empty when `ok`.",
    "PeftModel.train": "As `torch.nn.Module.train`; frozen BatchNorm layers stay in eval mode (their running "
                       "statistics never change) unless a method asks otherwise (`updates_frozen_bn_statistics`).",
    "PeftModel.forward": "The backbone's forward with the methods injected: points `(B, N, 3)` (images "
                         "`(B, 3, H, W)`) to logits `(B, classes)`.",
    "PeftModel.forward_features": "The backbone's `forward_features`: the normalised tokens, prompts included.",
    "PeftModel.forward_head": "The backbone's `forward_head`: tokens to logits, with the pooling a method chose.",
    "PeftConfig.to_dict": "The config as a plain dict with its `method` name: what `adapter_config.json` stores and "
                          "a recipe's `peft` mapping accepts.",
    "PeftModel.backbone_fingerprint": "The sha256 fingerprint of every frozen backbone tensor: what "
                                      "`save_pretrained` records and `from_pretrained` checks.",
}

#: the modules whose ``__all__`` must be covered
PUBLIC_MODULES = ("pcpeft", "pcpeft.export")

SECTION_HEADINGS = ("Args", "Arguments", "Returns", "Raises", "Attributes", "Yields", "Example", "Examples")


def inline(text: str) -> str:
    """reST inline markup of the docstrings as markdown: ````x```` and ``:func:`x``` -> ```x```; ``<``, ``>`` and
    ``*`` outside code spans escaped."""
    text = re.sub(r":(?:func|class|meth|mod|attr|data|exc|obj|ref):`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(parts)


def docstring_markdown(doc: str | None) -> str:
    """A Google-style docstring as markdown: paragraphs kept, ``Args:``-style sections as definition lists, other
    indented blocks as code."""
    if not doc:
        return "*No docstring.*"
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = line.strip().rstrip(":")
        if line.strip().endswith(":") and heading in SECTION_HEADINGS and not line.startswith(" "):
            out.append(f"\n**{heading}**\n")
            i += 1
            items: list[str] = []
            while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                text = lines[i].strip()
                if not text:
                    i += 1
                    continue
                indent = len(lines[i]) - len(lines[i].lstrip())
                if indent <= 4 and items is not None and (":" in text or not items):
                    items.append(text)
                elif items:
                    items[-1] += " " + text
                else:
                    items.append(text)
                i += 1
            for item in items:
                name, sep, rest = item.partition(":")
                if sep and re.fullmatch(r"[\w*., ()\[\]|]+", name.strip()) and heading not in ("Returns", "Yields"):
                    out.append(f"- `{name.strip()}`: {inline(rest.strip())}")
                else:
                    out.append(f"- {inline(item)}")
            out.append("")
            continue
        if line.startswith("    ") and line.strip():
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            out += ["", "```python", *block, "```", ""]
            continue
        out.append(inline(line))
        i += 1
    return "\n".join(out).strip()


def annotation_text(annotation) -> str:
    """An annotation as written in the source (they are strings under ``from __future__ import annotations``)."""
    if isinstance(annotation, str):
        return annotation.strip("'\"")
    return inspect.formatannotation(annotation)


def signature(name: str, obj) -> str:
    """``name(a: int, b: str = 'x', *, c=None) -> T`` with the annotations as written and the defaults as repr."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    parts, keyword_marked = [], False
    params = list(sig.parameters.values())
    for index, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and not keyword_marked:
            parts.append("*")
            keyword_marked = True
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text, keyword_marked = "*" + text, True
        elif p.kind is p.VAR_KEYWORD:
            text = "**" + text
        if p.annotation is not p.empty:
            text += ": " + annotation_text(p.annotation)
        if p.default is not p.empty:
            text += (" = " if p.annotation is not p.empty else "=") + repr(p.default)
        parts.append(text)
        last_positional = index + 1 == len(params) or params[index + 1].kind is not p.POSITIONAL_ONLY
        if p.kind is p.POSITIONAL_ONLY and last_positional:
            parts.append("/")
    result = f"{name}({', '.join(parts)})"
    if sig.return_annotation is not sig.empty:
        result += " -> " + annotation_text(sig.return_annotation)
    return result


def own_doc(obj) -> str | None:
    """The object's own docstring (not one inherited from ``torch.nn.Module``)."""
    target = obj.fget if isinstance(obj, property) else obj
    target = getattr(target, "__func__", target)
    return getattr(target, "__doc__", None)


def member_doc(cls, name: str, value) -> str:
    """The member's own docstring as markdown, else its ``FALLBACK_DOCS`` entry."""
    doc = own_doc(value)
    if not doc:
        doc = FALLBACK_DOCS.get(f"{cls.__name__}.{name}")
    return docstring_markdown(doc)


def check_fallbacks() -> None:
    """Warn (fails --strict) about FALLBACK_DOCS entries of members that are gone or now documented."""
    classes = {}
    for _, entries in ENTRIES:
        for module, name in entries:
            obj = getattr(importlib.import_module(module), name, None)
            if inspect.isclass(obj):
                classes[obj.__name__] = obj
    for key in FALLBACK_DOCS:
        class_name, _, member = key.partition(".")
        cls = classes.get(class_name)
        if cls is None or member not in vars(cls):
            LOG.warning(f"{PAGE}: FALLBACK_DOCS describes {key}, which is no longer a public member")


def class_members(cls) -> list[tuple[str, object]]:
    """Public methods and properties defined by ``cls`` itself (inherited ``nn.Module`` ones are left out)."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)) or inspect.isfunction(value) or isinstance(value, property):
            members.append((name, value))
    return members


def render_class(qualified: str, cls) -> str:
    bases = [b.__name__ for b in cls.__bases__ if b is not object]
    header = f"class {qualified}({', '.join(bases)})" if bases else f"class {qualified}"
    parts = [f"```python\n{header}\n```",
             docstring_markdown(cls.__doc__)]
    if dataclasses.is_dataclass(cls):
        rows = ["| field | type | default |", "| --- | --- | --- |"]
        for item in dataclasses.fields(cls):
            if item.default is not dataclasses.MISSING:
                default = f"`{item.default!r}`"
            elif item.default_factory is not dataclasses.MISSING:
                default = f"`{item.default_factory()!r}`"
            else:
                default = "required"
            kind = item.type if isinstance(item.type, str) else getattr(item.type, "__name__", str(item.type))
            kind = kind.replace(" | ", " or ")
            rows.append(f"| `{item.name}` | `{kind}` | {default} |")
        parts.append("**Fields**\n\n" + "\n".join(rows))
    for name, value in class_members(cls):
        if isinstance(value, property):
            parts.append(f"#### `{cls.__name__}.{name}` (property)\n\n{member_doc(cls, name, value)}")
            continue
        func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
        kind = " (class method)" if isinstance(value, classmethod) else ""
        sig = signature(name, func)
        if isinstance(value, classmethod):
            sig = sig.replace("(cls, ", "(").replace("(cls)", "()")
        else:
            sig = sig.replace("(self, ", "(").replace("(self)", "()")
        parts.append(f"#### `{cls.__name__}.{name}`{kind}\n\n```python\n{sig}\n```\n\n"
                     f"{member_doc(cls, name, value)}")
    return "\n\n".join(parts)


def render(module: str, name: str) -> str:
    obj = getattr(importlib.import_module(module), name)
    qualified = f"{module}.{name}"
    if name == "__version__":
        return f"### `{qualified}`\n\nThe installed version: `{obj}`."
    if inspect.isclass(obj):
        return f"### `{qualified}`\n\n" + render_class(qualified, obj)
    return f"### `{qualified}`\n\n```python\n{signature(qualified, obj)}\n```\n\n{docstring_markdown(obj.__doc__)}"


def reference() -> str:
    listed = {(m, n) for _, entries in ENTRIES for m, n in entries}
    sections = [(title, list(entries)) for title, entries in ENTRIES]
    missing = []
    for module in PUBLIC_MODULES:
        for name in getattr(importlib.import_module(module), "__all__", []):
            if (module, name) not in listed:
                missing.append((module, name))
                LOG.warning(f"{PAGE}: {module}.{name} is public but not placed in the API page (ENTRIES)")
    if missing:
        sections.append(("Other public names", missing))
    out = []
    for title, entries in sections:
        out.append(f"## {title}")
        out += [render(module, name) for module, name in entries]
    return "\n\n".join(out) + "\n"


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    import_checkout(config)
    if PLACEHOLDER not in markdown:
        raise PluginError(f"{PAGE} lost its placeholder {PLACEHOLDER}")
    check_fallbacks()
    return markdown.replace(PLACEHOLDER, reference())
