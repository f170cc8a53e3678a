"""The documentation site: it builds with ``mkdocs build --strict`` (no broken link or anchor, every page in the
nav), its generated pages cover every recipe key and every public name, its pages cite no file outside the
repository, the model zoo and the results page name every backbone and every method with an official release,
and every ``pcpeft`` command shown in a ``bash`` block parses with the real command line."""
from __future__ import annotations

import dataclasses
import html
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

BACKBONES = ("Point-MAE", "Point-BERT", "ACT", "ReCon", "PointGPT-S", "PointGPT-B", "PointGPT-L")
RELEASED_METHODS = ("DAPT", "IDPT", "PPT", "PointGST", "SSF", "Adapter-X")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once for this module, strictly (a warning is a failure)."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page (tags removed, entities decoded)."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", " ", raw))


def test_site_builds_strictly(site):
    for page in ("getting-started", "finetune", "model-zoo", "results", "recipes", "api", "cli", "faq",
                 "benchmarks"):
        assert (site / page / "index.html").is_file(), page


def test_recipes_page_lists_every_schema_key(site):
    from pcpeft.engine.data import dataset_sections
    from pcpeft.engine.recipe import schema
    from pcpeft.engine.recipe.shipped import shipped_recipes
    from pcpeft.models.registry import _MODELS, list_models

    text = page_text(site, "recipes")
    sections = [schema.TrainSettings, schema.TestSettings, schema.OptimizerSettings, schema.SchedulerSettings,
                schema.AugmentationSettings, schema.PretrainSettings, *dataset_sections().values()]
    missing = [f"{section.__name__}.{name}" for section in sections for name in section.model_fields
               if name not in text]
    for name in list_models():
        config = getattr(_MODELS[name], "config_class", None)
        if config is not None and dataclasses.is_dataclass(config):
            missing += [f"{name}.{f.name}" for f in dataclasses.fields(config) if f.name not in text]
        if name not in text:
            missing.append(name)
    for key in ("warmup_epochs", "val_fraction", "vote_times"):
        assert key in text
    for dataset_name in dataset_sections():
        assert f"dataset.name: {dataset_name}" in text, dataset_name
    assert not missing, f"keys not on the recipes page: {missing}"
    absent = [name for name in shipped_recipes() if name not in text]
    assert not absent, f"shipped recipes not listed: {absent}"


def test_api_page_lists_every_public_name(site):
    import pcpeft
    import pcpeft.export

    text = page_text(site, "api")
    missing = [f"pcpeft.{name}" for name in pcpeft.__all__ if f"pcpeft.{name}" not in text]
    missing += [f"pcpeft.export.{name}" for name in pcpeft.export.__all__ if f"pcpeft.export.{name}" not in text]
    assert not missing, f"public names not on the API page: {missing}"
    for member in ("print_trainable_parameters", "merge_and_unload", "save_pretrained", "from_pretrained"):
        assert f"PeftModel.{member}" in text, member


def user_doc_files() -> list[Path]:
    files = [p for p in DOCS.rglob("*") if p.is_file() and p.suffix in (".md", ".py", ".yml", ".yaml", ".txt")]
    return files + [ROOT / "README.md", ROOT / "mkdocs.yml"]


def test_no_page_cites_files_outside_the_repository():
    offenders = []
    for path in user_doc_files():
        text = path.read_text(encoding="utf-8")
        for needle in ("REFERENCE", "shared/"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, f"pages citing files outside the repository: {offenders}"


def test_no_built_page_cites_files_outside_the_repository(site):
    """The generated parts too (recipe comments, docstrings) cite no file outside the repository."""
    offenders = [f"{path.relative_to(site)}: {needle}" for path in site.rglob("*.html")
                 for needle in ("REFERENCE", "shared/") if needle in path.read_text(encoding="utf-8")]
    assert not offenders, f"built pages citing files outside the repository: {offenders}"


@pytest.mark.parametrize("page", ["model-zoo.md", "results.md"])
def test_zoo_and_results_name_every_backbone_and_released_method(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    missing = [name for name in BACKBONES + RELEASED_METHODS if name not in text]
    assert not missing, f"{page} does not mention {missing}"


def test_results_claim_no_reproduction():
    """Every row of the published-results tables says whether pcpeft reproduced it: today nowhere."""
    text = (DOCS / "results.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| ---") and not line.startswith("| backbone")]
    assert rows
    assert all(line.rstrip().endswith("| not run |") for line in rows), [r for r in rows if "not run" not in r]


def shown_commands() -> list[tuple[str, str]]:
    """(page, command) for every ``pcpeft ...`` line of a ``bash`` block (continuation lines joined, comments cut)."""
    out = []
    for path in sorted(DOCS.glob("*.md")):
        in_bash = False
        pending = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("```"):
                in_bash = not in_bash and stripped[3:].strip() in ("bash", "sh", "console")
                pending = ""
                continue
            if not in_bash:
                continue
            pending += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
            if stripped.endswith("\\"):
                continue
            command, pending = pending.strip(), ""
            match = re.search(r"(?:^|\s|;|&&)(?:-m\s+)?pcpeft\s+(\S.*)$", command)
            if match and not command.startswith("python -c"):
                words = shlex.split(match.group(1), comments=True)
                for index, word in enumerate(words):  # a redirection or a second command ends this one
                    if word in (">", ">>", "|", ";", "&&", "2>&1") or word.startswith(">"):
                        words = words[:index]
                        break
                out.append((path.name, " ".join(shlex.quote(w) for w in words)))
    return out


def test_every_shown_command_parses():
    try:
        from pcpeft.commands import build_parser
    except ImportError as err:
        pytest.skip(f"the pcpeft command package is not importable: {err}")
    parser = build_parser()
    commands = shown_commands()
    assert len(commands) > 30
    failures = []
    for page, command in commands:
        argv = shlex.split(command)
        if argv and argv[-1] == "done":
            argv = argv[:-1]
        try:
            parser.parse_args(argv)
        except SystemExit as err:
            if err.code not in (0, None):
                failures.append(f"{page}: pcpeft {command}")
    assert not failures, "commands shown in the docs that the parser refuses:\n" + "\n".join(failures)
