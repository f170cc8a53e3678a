"""The style holds by itself: ``ruff check`` (the configuration in pyproject.toml) passes on the whole tree."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (tools/setup.sh installs it)")
    done = subprocess.run([ruff, "check", "--output-format", "concise", "pcpeft", "tools", "tests", "benchmarks",
                           "docs/hooks"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _long_functions(root: Path, limit: int) -> list[str]:
    import ast

    found = []
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_the_package_is_over_80_lines():
    assert not _long_functions(ROOT / "pcpeft", 80)


def test_no_package_file_cites_a_work_item_or_a_date():
    import re

    pattern = re.compile(r"\b(issue|work item)s?\b|\b20\d\d-\d\d-\d\d\b", re.IGNORECASE)
    cited = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "pcpeft").rglob("*.py")) if "__pycache__" not in path.parts
             for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not cited, "\n".join(cited)
