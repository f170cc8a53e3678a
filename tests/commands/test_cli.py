"""The ``pcpeft`` command end to end: train with overrides then ``pcpeft test RUN`` alone, shipped recipe names,
``list``, the device record, progress bars kept out of pipes and logs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pcpeft.commands import main
from pcpeft.engine.recipe.shipped import resolve_recipe, shipped_recipes
from pcpeft.engine.recipe.yaml_io import ConfigError

ROOT = Path(__file__).resolve().parents[2]
#: overrides that make the synthetic recipe train in seconds
FAST = ["dataset.npoints=256", "dataset.train_per_class=6", "dataset.test_per_class=3", "model.num_group=16",
        "model.group_size=8", "model.depth=1", "train.batch_size=8", "scheduler.epochs=2", "scheduler.warmup_epochs=0"]


def run_command(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return done.value.code, out, err


def test_test_run_alone_gives_the_trainers_accuracy_of_that_epoch(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_command(["train", "--config", "finetune_synthetic", "--peft", "ssf", "--exp_name", "ssf",
                                "--opts", *FAST, f"dataset.root={tmp_path / 'demo'}"], capsys)
    assert code == 0 and "best epoch" in out
    run = tmp_path / "experiments" / "finetune_synthetic" / "ssf"
    results = json.loads((run / "results.json").read_text())
    assert results["device"] == "cpu"
    assert "device: cpu" in (run / "log.txt").read_text()
    for checkpoint in ("best", "last"):
        code, out, _ = run_command(["test", run, "--checkpoint", checkpoint, "--out", tmp_path / f"{checkpoint}.json"],
                                   capsys)
        assert code == 0
        tested = json.loads((tmp_path / f"{checkpoint}.json").read_text())
        assert tested["npoints"] == 256 and tested["device"] == "cpu"  # the override came from the run itself
        assert tested["overall_acc"] == pytest.approx(results[checkpoint]["overall_acc"])
    code, out, err = run_command(["test", run, "--opts", "dataset.npoints=512"], capsys)
    assert code == 2 and "its own config.yaml" in err


def test_test_needs_a_run_or_a_recipe(capsys):
    code, _, err = run_command(["test"], capsys)
    assert code == 2 and "pcpeft test RUN" in err and "Traceback" not in err


def test_recipes_are_found_by_name_and_in_the_official_spelling():
    assert resolve_recipe("finetune_synthetic").resolve() == (ROOT / "cfgs/finetune_synthetic.yaml").resolve()
    assert resolve_recipe("pointgpt_l/finetune_scan_hardest").name == "finetune_scan_hardest.yaml"
    official = resolve_recipe("cfgs/PointGPT-S/finetune_scan_hardest.yaml")
    assert official.parent.name == "pointgpt_s"
    with pytest.raises(ConfigError, match="pointgpt_x/finetune: no such file.*closest shipped recipes"):
        resolve_recipe("pointgpt_x/finetune")
    names = shipped_recipes()
    assert "finetune_scan_hardest" in names and "pointgpt_b/finetune_modelnet" in names


@pytest.mark.parametrize("what,expected", [("models", ["point_mae", "pointgpt_l", "recon", "act"]),
                                           ("methods", ["adapter_x", "dapt", "idpt", "ppt", "pointgst", "ssf"]),
                                           ("recipes", ["finetune_synthetic", "pointgpt_s/finetune_scan_objbg"])])
def test_list(what, expected, capsys):
    code, out, _ = run_command(["list", what], capsys)
    names = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and all(name in names for name in expected)
    if what == "recipes":
        assert not any(name.startswith(("datasets/", "models/", "schedules/")) for name in names)


def test_device_cuda_without_a_gpu_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    code, _, err = run_command(["train", "--config", "finetune_synthetic", "--device", "cuda"], capsys)
    assert code == 2 and "--device cuda: no CUDA device" in err and "Traceback" not in err


def test_a_piped_run_logs_one_line_per_epoch_without_progress_bars(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pcpeft", "train", "--config", "finetune_synthetic", "--peft",
                           "linear", "--opts", *FAST, f"dataset.root={tmp_path / 'demo'}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\r" not in done.stderr and "it/s" not in done.stderr
    assert sum("epoch=" in line for line in done.stderr.splitlines()) == 2


def test_recipe_prints_the_translation_and_train_runs_an_official_file(tmp_path, capsys, monkeypatch):
    from tests.engine.test_official_recipes import point_mae_text

    official = tmp_path / "Point-MAE" / "cfgs" / "finetune_scan_objbg.yaml"
    official.parent.mkdir(parents=True)
    official.write_text(point_mae_text("objbg"))
    code, out, _ = run_command(["recipe", official, "--out", tmp_path / "translated.yaml"], capsys)
    assert code == 0 and "the same settings as the shipped recipe finetune_scan_objbg" in out
    assert (tmp_path / "translated.yaml").read_text().strip() in out
    code, out, _ = run_command(["recipe", "finetune_synthetic", "--opts", "train.batch_size=7"], capsys)
    resolved = yaml.safe_load(out)  # a pcpeft recipe: printed resolved, every default filled in
    assert code == 0 and out.startswith(f"# {resolve_recipe('finetune_synthetic')}, resolved")
    assert resolved["train"]["batch_size"] == 7 and resolved["scheduler"]["warmup_lr"] == 1e-6
    assert resolved["dataset"]["name"] == "SyntheticDemo" and "npoints" in resolved["dataset"]
    monkeypatch.chdir(tmp_path)
    small = ["dataset.name=SyntheticDemo", f"dataset.root={tmp_path / 'demo'}", "model.num_classes=12",
             "dataset.train_per_class=4", "dataset.test_per_class=2", "train.batch_size=8", "model.trans_dim=32",
             "model.encoder_dims=32", "model.num_heads=2", *FAST[:1], *FAST[3:6], "scheduler.epochs=1",
             "scheduler.warmup_epochs=0", "train.num_workers=0"]
    code, out, _ = run_command(["train", "--config", official, "--peft", "linear", "--opts", *small], capsys)
    assert code == 0, out
    run = tmp_path / "experiments" / "finetune_scan_objbg" / "default"
    assert (run / "official_recipe.yaml").read_text() == official.read_text()
    assert "model" in (run / "config.yaml").read_text()


def test_summary_all_covers_the_point_classifiers_only():
    from pcpeft.commands.summary import point_classifiers

    assert sorted(point_classifiers()) == ["act", "point_bert", "point_mae", "pointgpt_b", "pointgpt_l",
                                           "pointgpt_s", "recon"]
