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
