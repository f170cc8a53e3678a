"""Sweeps on Ray Tune (one local Ray instance for the module) and the table: an interrupted sweep resumed without
rerunning finished trials, each trial equal to a plain run, a failing trial isolated, axes chosen on validation
only, unknown methods and keys refused before any trial, the shipped sweeps valid."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("ray")

from pcpeft.commands import main  # noqa: E402
from pcpeft.commands.recipe_input import load_recipe  # noqa: E402
from pcpeft.engine.recipe.shipped import resolve_recipe, shipped_recipes  # noqa: E402
from pcpeft.engine.recipe.yaml_io import ConfigError  # noqa: E402
from pcpeft.engine.training.finetune import RunOptions, train  # noqa: E402
from pcpeft.experiments.grid import SweepSpec, expand, parse_grid  # noqa: E402
from pcpeft.experiments.stats import summarize  # noqa: E402
from pcpeft.experiments.sweep import plan_sweep, run_sweep  # noqa: E402
from pcpeft.experiments.table import RunRecord, build_table, choose_on_validation  # noqa: E402

TINY = ["dataset.npoints=256", "dataset.train_per_class=6", "dataset.test_per_class=3", "model.num_group=16",
        "model.group_size=8", "model.depth=1", "model.trans_dim=64", "model.encoder_dims=64", "train.batch_size=8",
        "scheduler.warmup_epochs=0", "train.num_workers=0"]
#: results.json fields that measure time, not what was computed
TIMING = ("median_step_seconds",)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from pcpeft.experiments.ray_runner import start_ray

    start_ray(None, num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo") / "synthetic_demo"


def tiny_spec(demo_root: Path, axes: dict, epochs: int = 2, extra: tuple[str, ...] = ()) -> SweepSpec:
    return SweepSpec(recipes=["finetune_synthetic"], axes=axes,
                     opts=[*TINY, f"scheduler.epochs={epochs}", f"dataset.root={demo_root}", *extra])


def comparable(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in TIMING}


def plain_run(trial, root: Path) -> dict:
    """The same settings through a plain `train` (one thread, as a trial asking one CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe = load_recipe(trial.recipe, trial.overrides)
        return train(recipe.config, RunOptions(config_path=str(recipe.path), peft=trial.peft, seed=trial.seed,
                                               exp_name=Path(trial.name).name, experiments_root=str(root),
                                               progress=False))
    finally:
        torch.set_num_threads(threads)


def test_a_killed_sweep_resumes_reruns_nothing_finished_and_equals_plain_runs(ray_local, demo_root, tmp_path):
    out = tmp_path / "sweep"
    grid = ["peft=linear,ssf", "seed=0,1"]
    opts = [*TINY, "scheduler.epochs=3", f"dataset.root={demo_root}"]
    driver = subprocess.Popen([sys.executable, "-m", "pcpeft", "sweep", "--config", "finetune_synthetic", "--grid",
                               *grid, "--out_dir", str(out), "--opts", *opts], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    finished_first, deadline = None, time.monotonic() + 240
    while finished_first is None and time.monotonic() < deadline and driver.poll() is None:
        for path in out.rglob("results.json"):
            if json.loads(path.read_text() or "{}").get("finished"):
                finished_first = path.parent
        time.sleep(0.2)
    assert finished_first is not None, driver.stderr.read().decode()[-3000:] if driver.poll() is not None else ""
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    kept = {name: (finished_first / name).read_bytes() for name in ("results.json", "ckpt-last.pth", "config.yaml")}
    spec = tiny_spec(demo_root, parse_grid(grid), epochs=3)
    states_at_kill = plan_sweep(spec, out).states
    assert list(states_at_kill.values()).count("finished") < 4  # the kill interrupted the sweep
    _wait_for_unlocked(out)

    outcome = run_sweep(spec, out, resume=True)
    assert outcome.failed == 0 and sorted(outcome.states.values()) == ["finished"] * 4
    for name, content in kept.items():
        assert (finished_first / name).read_bytes() == content, f"{name} of the finished trial changed"
    folders = sorted(p.parent for p in out.rglob("results.json"))
    assert len(folders) == 4
    trials = expand(spec)
    for trial in trials:
        swept = json.loads((out / trial.name / "results.json").read_text())
        alone = plain_run(trial, tmp_path / "plain")
        assert comparable(swept) == comparable(json.loads(json.dumps(alone)))
    table = build_table(out)
    for row in table.rows:
        values = [json.loads((out / t.name / "results.json").read_text())["last"]["overall_acc"]
                  for t in trials if t.peft == row.cell["peft"]]
        expected = summarize(values)
        assert row.summaries["overall_acc"].mean == pytest.approx(expected.mean)
        assert row.summaries["overall_acc"].std == pytest.approx(expected.std)
        assert row.summaries["overall_acc"].n == 2


def _wait_for_unlocked(out: Path, seconds: float = 30) -> None:
    """Until no trial folder holds the lock of a live process (the killed driver's workers are gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        live = []
        for lock in out.rglob(".lock"):
            try:
                os.kill(int(lock.read_text().split()[0]), 0)
                live.append(lock)
            except (ProcessLookupError, ValueError, IndexError, OSError):
                pass
        if not live:
            return
        time.sleep(0.2)


def test_a_failing_trial_is_recorded_and_the_others_finish(ray_local, demo_root, tmp_path, capsys):
    out = tmp_path / "sweep"
    with pytest.raises(SystemExit) as done:
        main(["sweep", "--config", "finetune_synthetic", "--grid", "peft=linear", "train.batch_size=8,5000",
              "--out_dir", str(out), "--opts", *TINY[:-3], "scheduler.warmup_epochs=0", "train.num_workers=0",
              "scheduler.epochs=1", f"dataset.root={demo_root}"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    failed = [line for line in err.splitlines() if line.startswith("error: trial")]
    assert len(failed) == 1 and "train.batch_size=5000" in failed[0] and "larger than the training set" in failed[0]
    assert (out / "finetune_synthetic" / "peft=linear,train.batch_size=8" / "results.json").is_file()
    table = build_table(out)
    assert [row.cell["train.batch_size"] for row in table.rows] == ["8"]


def test_select_chooses_on_validation_and_ignores_the_test_labels(ray_local, demo_root, tmp_path):
    grid = {"optimizer.lr": [5e-4, 5e-3], "seed": [0]}
    extra = ("dataset.val_fraction=0.25", "peft=linear")
    first = tiny_spec(demo_root, grid, extra=extra).model_copy(update={"select": ["optimizer.lr"]})
    assert run_sweep(first, tmp_path / "a").failed == 0
    chosen_a = build_table(tmp_path / "a").rows[0].chosen

    shuffled = tmp_path / "shuffled"
    _copy_with_shuffled_test_labels(demo_root, shuffled)
    second = first.model_copy(update={"opts": [*first.opts, f"dataset.root={shuffled}"]})
    assert run_sweep(second, tmp_path / "b").failed == 0
    table_b = build_table(tmp_path / "b")
    assert table_b.rows[0].chosen == chosen_a and set(chosen_a) == {"optimizer.lr"}
    assert any("chosen per cell on the validation split" in note for note in table_b.notes)


def _copy_with_shuffled_test_labels(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target)
    tests = [p for p in target.rglob("*.h5") if "test" in p.name]
    assert tests, f"no test h5 under {target}"
    for path in tests:
        with h5py.File(path, "r+") as handle:
            labels = handle["label"][...]
            handle["label"][...] = np.roll(labels, 1)


def test_choice_follows_validation_even_when_test_disagrees():
    def record(lr, seed, val, test):
        results = {"best_chosen_on": "validation", "best": {"val_acc": val, "overall_acc": test}}
        return RunRecord(Path("x"), {"peft": "ssf"}, str(seed), {"optimizer.lr": lr}, results)

    records = [record("1e-3", s, 60.0, 90.0) for s in (0, 1)] + [record("2e-3", s, 70.0, 10.0) for s in (0, 1)]
    kept, chosen = choose_on_validation(records, ["optimizer.lr"])
    assert {r.selected["optimizer.lr"] for r in kept} == {"2e-3"}
    assert next(iter(chosen.values()))["values"] == {"optimizer.lr": "2e-3"}


@pytest.mark.parametrize("grid,message", [(["peft=linear,adaptr_x"], "unknown PEFT method"),
                                          (["optimizer.lrr=1e-3"], "unknown key 'optimizer.lrr'")])
def test_unknown_methods_and_keys_are_refused_before_any_trial(grid, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["sweep", "--config", "finetune_synthetic", "--grid", *grid, "--out_dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_an_unknown_recipe_is_refused_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="finetune_nothing"):
        plan_sweep(SweepSpec(recipes=["finetune_nothing"], axes={"seed": [0]}), tmp_path)


@pytest.mark.parametrize("name", [n for n in shipped_recipes() if n.startswith("sweeps/")])
def test_the_shipped_sweeps_are_valid(name, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["sweep", name, "--out_dir", str(tmp_path / "dry"), "--dry_run"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "trials (0 finished)" in out
    assert not (tmp_path / "dry").exists()


def test_the_fewshot_sweep_is_the_papers_protocol():
    from pcpeft.experiments.grid import read_sweep_file

    spec = read_sweep_file(resolve_recipe("sweeps/fewshot_modelnet40"))
    trials = expand(spec)
    assert len(trials) == 4 * 10 and spec.replicate == "dataset.fold"
    settings = {(t.axes["setting"]["dataset.way"], t.axes["setting"]["dataset.shot"]) for t in trials}
    assert settings == {(5, 10), (5, 20), (10, 10), (10, 20)}
    assert all(f"model.num_classes={t.axes['setting']['dataset.way']}" in t.overrides for t in trials)
