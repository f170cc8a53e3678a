"""``pip install .`` (not editable) gives a working ``pcpeft`` command outside the checkout: help, the model and
method lists, and one epoch of ``pcpeft train --config finetune_synthetic --peft ssf`` with the shipped recipes."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A non-editable install of a copy of the checkout into a target folder (no dependencies: they are the test
    environment's)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed (tools/setup.sh installs it)")
    work = tmp_path_factory.mktemp("install")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("pcpeft", "cfgs"):
        shutil.copytree(ROOT / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = work / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
                           "--target", str(target), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (target / "pcpeft" / "recipes").is_symlink()  # the recipes are files inside the package
    return target


def pcpeft(installed: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([str(installed / "bin" / "pcpeft"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_installed_command_works_from_another_folder(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([sys.executable, "-c", "import pcpeft; print(pcpeft.__file__)"], cwd=elsewhere,
                           env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(installed)  # the installed copy, not the checkout
    helped = pcpeft(installed, "--help", cwd=elsewhere)
    assert helped.returncode == 0 and "train" in helped.stdout and "compare" in helped.stdout
    models = pcpeft(installed, "list", "models", cwd=elsewhere)
    assert models.returncode == 0 and "pointgpt_l" in models.stdout
    methods = pcpeft(installed, "list", "methods", cwd=elsewhere)
    assert methods.returncode == 0 and "adapter_x" in methods.stdout
    trained = pcpeft(installed, "train", "--config", "finetune_synthetic", "--peft", "ssf", "--opts",
                     "scheduler.epochs=1", "scheduler.warmup_epochs=0", "dataset.train_per_class=4",
                     "dataset.test_per_class=2", "train.batch_size=8", cwd=elsewhere)
    assert trained.returncode == 0, trained.stderr[-3000:]
    results = json.loads((elsewhere / "experiments/finetune_synthetic/default/results.json").read_text())
    assert results["methods"] == ["ssf"] and results["epochs_run"] == 1 and results["finished"]
