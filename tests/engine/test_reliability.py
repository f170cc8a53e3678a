"""Safety and reliability: no file runs code, runs never clobber each other, recipes are validated before any
work, errors are one line with exit status 2. Each test names the defect it covers."""
import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import pcpeft
from pcpeft.datasets import write_demo_dataset
from pcpeft.engine.recipe.schema import validate_recipe
from pcpeft.engine.recipe.yaml_io import ConfigError, apply_overrides, load_config
from pcpeft.engine.runs.folders import RunFolder, RunFolderError, experiment_dir
from pcpeft.engine.runs.training_state import load_training_state, save_atomic
from pcpeft.engine.training.finetune import RunOptions, train
from pcpeft.errors import UserError
from pcpeft.io import RefusedPickleError, safe_pickle_load

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
TINY_MODEL = dict(name="point_mae", num_classes=12, trans_dim=64, encoder_dims=64, depth=1, num_heads=2,
                  num_group=16, group_size=8, drop_path_rate=0.1)


class Payload:
    """A pickle that, when unpickled by plain pickle, creates a marker file (standing in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, train_per_class=2, test_per_class=1)
    return root


def tiny_config(data_root, epochs=2):
    return {"model": dict(TINY_MODEL),
            "dataset": {"name": "SyntheticDemo", "root": str(data_root), "npoints": 256},
            "optimizer": {"lr": 2e-3, "weight_decay": 0.05},
            "scheduler": {"epochs": epochs, "warmup_epochs": 0},
            "train": {"batch_size": 8, "num_workers": 0}}


def run(config, root, name="run", **opts):
    options = RunOptions(config_path="tiny.yaml", exp_name=name, experiments_root=str(root), progress=False, **opts)
    return train(config, options), Path(root) / "tiny" / name


def tool(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})})


def assert_user_error(proc, *fragments):
    """Exit status 2, an 'error:' line naming the fragments, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr[-2000:])


# -- 1. no file runs code ------------------------------------------------------------------------------------------
def test_planted_pickle_in_the_modelnet_fps_cache_never_runs(tmp_path):
    from pcpeft.datasets.modelnet import read_fps_cache

    marker = tmp_path / "pwned"
    cache = tmp_path / "modelnet40_train_8192pts_fps.dat"
    cache.write_bytes(pickle.dumps([[np.zeros((4, 6), np.float32), Payload(marker)], [np.array([0])] * 2]))
    with pytest.raises(RefusedPickleError, match=r"modelnet40_train_8192pts_fps.dat.*posix.system"):
        read_fps_cache(cache)
    assert not marker.exists()
    genuine = tmp_path / "genuine.dat"  # the official layout still loads (numpy 1 and 2 pickles, protocol 2 and 4)
    for protocol in (2, 4):
        genuine.write_bytes(pickle.dumps([[np.ones((4, 6), np.float32)], [np.array([3], np.int32)]],
                                         protocol=protocol))
        points, labels = read_fps_cache(genuine)
        assert points[0].shape == (4, 6) and int(labels[0][0]) == 3


def test_numpy1_pickles_of_the_official_formats_load():
    # numpy 1.x (which wrote the released .dat / .pkl files) names numpy.core.multiarray, numpy 2 numpy._core
    data = pickle.dumps([[np.array([1.0, 2.0], np.float32)], {"label": np.int64(3)}], protocol=2)
    legacy = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in legacy
    [array], meta = safe_pickle_load(legacy)
    assert array.tolist() == [1.0, 2.0] and int(meta["label"]) == 3


def test_planted_pickle_in_a_fewshot_fold_never_runs(tmp_path):
    from pcpeft.datasets.modelnet import ModelNetFewShot

    marker = tmp_path / "pwned"
    folder = tmp_path / "5way_10shot"
    folder.mkdir()
    (folder / "0.pkl").write_bytes(pickle.dumps({"train": [(np.zeros((8, 3)), 0, Payload(marker))]}))
    with pytest.raises(RefusedPickleError, match=r"0.pkl.*posix.system"):
        ModelNetFewShot(tmp_path, 5, 10, 0, "train")
    assert not marker.exists()


@pytest.mark.parametrize("where", ["ckpts", "resume", "vit"])
def test_planted_pickle_in_a_checkpoint_never_runs(tmp_path, demo_root, where):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"base_model": {"cls_token": torch.zeros(1)}, "metrics": Payload(marker)}, evil)
    if where == "ckpts":
        with pytest.raises(pcpeft.CheckpointError, match=r"evil.pth: refused to load.*posix.system"):
            run(tiny_config(demo_root), tmp_path, ckpts=str(evil))
    elif where == "resume":
        run(tiny_config(demo_root, epochs=1), tmp_path, name="r")
        os.replace(evil, tmp_path / "tiny/r/ckpt-last.pth")
        with pytest.raises(pcpeft.CheckpointError, match="refused to load"):
            run(tiny_config(demo_root, epochs=2), tmp_path, name="r", resume=True)
    else:
        vit = pcpeft.create_model("vit_tiny_patch16_224", num_classes=10, depth=1)
        with pytest.raises(pcpeft.CheckpointError, match="refused to load"):
            pcpeft.load_checkpoint(vit, evil)
    assert not marker.exists()


def test_test_tool_refuses_a_planted_checkpoint_without_suggesting_the_unsafe_flag(tmp_path, demo_root):
    marker = tmp_path / "pwned"
    torch.save({"base_model": Payload(marker)}, tmp_path / "evil.pth")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(demo_root)))
    proc = tool(TOOLS / "test.py", "--config", recipe, "--ckpts", tmp_path / "evil.pth")
    assert_user_error(proc, "evil.pth", "refused to load")
    assert "weights_only" not in proc.stderr and not marker.exists()


def test_random_bytes_and_truncated_checkpoints_are_named_plainly(tmp_path):
    model = pcpeft.create_model("point_mae", **{k: v for k, v in TINY_MODEL.items() if k != "name"})
    (tmp_path / "random.pth").write_bytes(np.random.default_rng(0).bytes(4000))
    torch.save(model.state_dict(), tmp_path / "good.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "good.pth").read_bytes()[:3000])
    for name in ("random.pth", "cut.pth"):
        with pytest.raises(pcpeft.CheckpointError, match=f"{name} is not a PyTorch checkpoint") as err:
            pcpeft.load_checkpoint(model, tmp_path / name)
        assert "weights_only" not in str(err.value)


# -- 2. runs that never clobber each other -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "/abs/path", "", "a/../../b", "~/x"])
def test_exp_names_that_leave_the_experiments_root_are_refused(tmp_path, name):
    with pytest.raises(RunFolderError, match="inside the experiments root"):
        experiment_dir(tmp_path, "cfgs/x.yaml", name)


def test_recipes_in_different_folders_get_different_run_folders(tmp_path):
    mae = experiment_dir(tmp_path, ROOT / "cfgs/finetune_scan_hardest.yaml", "a")
    bert = experiment_dir(tmp_path, ROOT / "cfgs/point_bert/finetune_scan_hardest.yaml", "a")
    assert mae != bert
    assert mae == tmp_path / "finetune_scan_hardest/a" and bert == tmp_path / "point_bert/finetune_scan_hardest/a"


def test_a_rerun_is_refused_and_overwrite_moves_the_old_run_aside(tmp_path, demo_root):
    first, folder = run(tiny_config(demo_root, epochs=1), tmp_path, name="x")
    before = (folder / "results.json").read_text()
    with pytest.raises(RunFolderError, match="already holds a run"):
        run(tiny_config(demo_root, epochs=1), tmp_path, name="x")
    assert (folder / "results.json").read_text() == before
    run(tiny_config(demo_root, epochs=1), tmp_path, name="x", overwrite=True)
    aside = [p for p in folder.parent.iterdir() if p.name.startswith("x.replaced-")]
    assert len(aside) == 1 and (aside[0] / "results.json").read_text() == before
    assert not (aside[0] / ".lock").exists() and not (folder / ".lock").exists()


def test_a_run_that_fails_at_start_writes_no_config(tmp_path, demo_root):
    config = tiny_config(tmp_path / "no_such_data")
    config["dataset"]["name"] = "ScanObjectNN"
    with pytest.raises(UserError):
        run(config, tmp_path, name="bad")
    assert not (tmp_path / "tiny/bad/config.yaml").exists()
    run(tiny_config(demo_root, epochs=1), tmp_path, name="bad")  # the folder is free for a real start
    assert (tmp_path / "tiny/bad/config.yaml").is_file()


def test_resume_with_a_changed_model_keeps_the_config(tmp_path, demo_root):
    _, folder = run(tiny_config(demo_root, epochs=1), tmp_path, name="m", peft="ssf")
    saved = (folder / "config.yaml").read_text()
    changed = tiny_config(demo_root, epochs=2)
    changed["model"]["trans_dim"] = changed["model"]["encoder_dims"] = 32
    with pytest.raises(ConfigError, match=r"another model \(model.encoder_dims: 64 -> 32, model.trans_dim: 64 -> 32"):
        run(changed, tmp_path, name="m", peft="ssf", resume=True)
    with pytest.raises(ConfigError, match="method"):
        run(tiny_config(demo_root, epochs=2), tmp_path, name="m", peft="lora", resume=True)
    with pytest.raises(ConfigError, match="--seed 0, not 7"):
        run(tiny_config(demo_root, epochs=2), tmp_path, name="m", peft="ssf", resume=True, seed=7)
    assert (folder / "config.yaml").read_text() == saved


def test_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken_over(tmp_path, demo_root):
    folder = tmp_path / "tiny/locked"
    folder.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (folder / ".lock").write_text(f"{sleeper.pid}\n")
        with pytest.raises(RunFolderError, match=f"in use by a running process \\(pid {sleeper.pid}"):
            run(tiny_config(demo_root, epochs=1), tmp_path, name="locked")
    finally:
        sleeper.kill()
        sleeper.wait()
    # the process is gone: its lock is stale and taken over, with a log line
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("pcpeft").addHandler(handler)
    try:
        with RunFolder(folder) as claimed:
            assert (folder / ".lock").read_text().split()[0] == str(os.getpid())
    finally:
        logging.getLogger("pcpeft").removeHandler(handler)
    assert any(f"stale lock {folder / '.lock'} of process {sleeper.pid}" in r.getMessage() for r in records)
    assert not claimed.lock.exists()


def test_two_runs_started_together_never_mix_their_files(tmp_path, demo_root):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(demo_root, epochs=2)))
    cmd = [TOOLS / "train.py", "--config", recipe, "--experiments", tmp_path, "--exp_name", "same", "--no_progress"]
    procs = [subprocess.Popen([sys.executable, *map(str, cmd), "--seed", str(s)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for s in (1, 2)]
    outs = [(p.wait(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in outs)
    assert codes == [0, 2], outs
    loser = next(err for code, err in outs if code == 2)
    assert "in use by a running process" in loser or "already holds a run" in loser
    winner_seed = yaml.safe_load((tmp_path / "tiny/same/config.yaml").read_text())["run"]["seed"]
    results = json.loads((tmp_path / "tiny/same/results.json").read_text())
    assert results["seed"] == winner_seed
    assert load_training_state(tmp_path / "tiny/same/ckpt-last.pth")["run"]["seed"] == winner_seed


def test_leftover_temporary_checkpoints_are_removed_at_start(tmp_path, demo_root):
    _, folder = run(tiny_config(demo_root, epochs=1), tmp_path, name="t")
    (folder / ".ckpt-last.pth.tmp-99999").write_bytes(b"half")
    (folder / ".ckpt-best.pth.tmp-12345").write_bytes(b"half")
    run(tiny_config(demo_root, epochs=2), tmp_path, name="t", resume=True)
    assert not list(folder.glob(".*.tmp-*"))


def test_a_full_disk_is_one_clear_error_and_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    import errno

    from pcpeft.engine.runs.training_state import DiskFullError

    target = tmp_path / "ckpt-last.pth"
    save_atomic({"epoch": 0}, target)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(DiskFullError, match="disk full while writing .*ckpt-last.pth"):
        save_atomic({"epoch": 1}, target)
    assert load_training_state(target)["epoch"] == 0 and not list(tmp_path.glob(".*.tmp-*"))


def test_pretrain_resume_is_bit_identical(tmp_path, demo_root):
    from pcpeft.engine.training.pretrain import pretrain

    config = tiny_config(demo_root, epochs=3)
    config["pretrain"] = {"decoder_depth": 1, "decoder_num_heads": 2}
    straight = torch.load(pretrain(config, tmp_path / "a", seed=2, progress=False), weights_only=True)
    pretrain(config, tmp_path / "b", seed=2, progress=False, stop_after_epochs=1)
    with pytest.raises(RunFolderError, match="already holds a run"):
        pretrain(config, tmp_path / "b", seed=2, progress=False)
    with pytest.raises(ConfigError, match="--seed 2, not 3"):
        pretrain(config, tmp_path / "b", seed=3, progress=False, resume=True)
    resumed = torch.load(pretrain(config, tmp_path / "b", seed=2, progress=False, resume=True), weights_only=True)
    assert straight["epoch"] == resumed["epoch"] == 2
    for key, value in straight["base_model"].items():
        assert torch.equal(value, resumed["base_model"][key]), key


def test_pretrain_tool_resumes(tmp_path, demo_root):
    config = tiny_config(demo_root, epochs=2)
    config["pretrain"] = {"decoder_depth": 1, "decoder_num_heads": 2}
    recipe = tmp_path / "pre.yaml"
    recipe.write_text(yaml.safe_dump(config))
    first = tool(TOOLS / "pretrain.py", "--config", recipe, "--out_dir", tmp_path / "p", "--no_progress",
                 "--opts", "scheduler.epochs=1")
    assert first.returncode == 0, first.stderr[-2000:]
    assert_user_error(tool(TOOLS / "pretrain.py", "--config", recipe, "--out_dir", tmp_path / "p"),
                      "already holds a run")
    again = tool(TOOLS / "pretrain.py", "--config", recipe, "--out_dir", tmp_path / "p", "--resume", "--no_progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert load_training_state(tmp_path / "p/ckpt-last.pth")["epoch"] == 1


# -- 3. settings validated before any work -------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("trian.batch_size=16", "unknown key 'trian' (did you mean 'train'?)"),
    ("train.batch_sise=16", "did you mean 'train.batch_size'?"),
    ("model.trans_dimm=64", "did you mean 'model.trans_dim'?"),
    ("train.batch_size=abc", "train.batch_size = 'abc'"),
    ("optimizer.lr=fast", "optimizer.lr = 'fast'"),
    ("scheduler.epochs=0", "scheduler.epochs = 0: Input should be greater than or equal to 1"),
    ("train.batch_size=0", "train.batch_size = 0"),
    ("test.vote_times=0", "test.vote_times = 0"),
    ("dataset.npoints=0", "dataset.npoints = 0"),
    ("dataset.split=OBJ", "dataset.split = 'OBJ'"),
    ("model.name=point_maee", "did you mean 'point_mae'?"),
])
def test_recipe_schema_refuses_bad_keys_types_and_ranges(override, message):
    config = apply_overrides(load_config(ROOT / "cfgs/finetune_scan_hardest.yaml"), [override])
    with pytest.raises(ConfigError) as err:
        validate_recipe(config, "cfgs/finetune_scan_hardest.yaml")
    assert message in str(err.value) and "cfgs/finetune_scan_hardest.yaml" in str(err.value)


def test_every_shipped_recipe_passes_the_schema():
    recipes = [p for p in (ROOT / "cfgs").rglob("*.yaml") if "model" in load_config(p) and "dataset" in load_config(p)]
    assert len(recipes) > 10
    for path in recipes:
        task = "pretrain" if path.name.startswith("pretrain") else "finetune"
        validate_recipe(load_config(path), str(path), task=task)


def test_batch_larger_than_the_data_set_is_refused_unless_drop_last_is_off(tmp_path, demo_root):
    config = tiny_config(demo_root, epochs=1)
    config["train"]["batch_size"] = 64  # 24 training clouds
    with pytest.raises(ConfigError, match="larger than the training set .24 samples"):
        run(config, tmp_path, name="big")
    assert not (tmp_path / "tiny/big/config.yaml").exists()
    config["train"]["drop_last"] = False
    results, folder = run(config, tmp_path, name="big")
    assert len(results["history"]) == 1 and results["history"][0]["train_loss"] > 0
    json.loads((folder / "results.json").read_text())


def test_results_json_is_always_valid_json(tmp_path):
    from pcpeft.engine.training.finetune import write_json

    write_json(tmp_path / "r.json", {"loss": float("nan"), "h": [{"x": float("inf")}]})
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text) == {"loss": None, "h": [{"x": None}]} and "NaN" not in text


def test_too_few_points_names_the_file(tmp_path, demo_root):
    config = tiny_config(demo_root, epochs=1)
    config["dataset"]["npoints"] = 5000
    with pytest.raises(UserError, match=r"training_objectdataset.h5: the training clouds .* fewer than "
                                        r"dataset.npoints = 5000"):
        run(config, tmp_path, name="few")


def test_ckpts_that_do_not_fit_stop_unless_partial_load_is_allowed(tmp_path, demo_root):
    wide = pcpeft.create_model("point_mae", **{**{k: v for k, v in TINY_MODEL.items() if k != "name"},
                                               "trans_dim": 32, "encoder_dims": 32})
    torch.save({"base_model": wide.state_dict()}, tmp_path / "wide.pth")
    with pytest.raises(pcpeft.CheckpointError, match="(?s)does not fit the model .*--allow_partial_load"):
        run(tiny_config(demo_root, epochs=1), tmp_path, name="w", ckpts=str(tmp_path / "wide.pth"))
    assert not (tmp_path / "tiny/w/config.yaml").exists()
    deep = pcpeft.create_model("point_mae", **{**{k: v for k, v in TINY_MODEL.items() if k != "name"}, "depth": 2})
    torch.save({"base_model": deep.state_dict()}, tmp_path / "deep.pth")
    run(tiny_config(demo_root, epochs=1), tmp_path, name="d", ckpts=str(tmp_path / "deep.pth"),
        allow_partial_load=True)
    assert "PARTIAL load" in (tmp_path / "tiny/d/log.txt").read_text()


def test_a_head_of_another_class_count_is_dropped_and_logged(tmp_path, demo_root):
    other = pcpeft.create_model("point_mae", **{**{k: v for k, v in TINY_MODEL.items() if k != "name"},
                                                "num_classes": 40})
    torch.save({"base_model": other.state_dict()}, tmp_path / "ft40.pth")
    run(tiny_config(demo_root, epochs=1), tmp_path, name="h", ckpts=str(tmp_path / "ft40.pth"))
    log = (tmp_path / "tiny/h/log.txt").read_text()
    assert "another class count" in log and "the head is dropped" in log


# -- 4. errors for people ------------------------------------------------------------------------------------------
def test_train_tool_errors_are_one_line_with_status_2_and_debug_shows_the_traceback(tmp_path):
    missing = tool(TOOLS / "train.py", "--config", "cfgs/finetune_scan_hardest.yaml", "--experiments", tmp_path,
                   "--opts", f"dataset.root={tmp_path / 'nothing'}")
    assert_user_error(missing, "is missing", "datasets/README.md")
    assert not list(tmp_path.rglob("config.yaml"))
    debug = tool(TOOLS / "train.py", "--config", "cfgs/finetune_scan_hardest.yaml", "--experiments", tmp_path,
                 "--opts", f"dataset.root={tmp_path / 'nothing'}", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    env = tool(TOOLS / "train.py", "--config", "cfgs/finetune_scan_hardest.yaml", "--experiments", tmp_path,
               "--opts", f"dataset.root={tmp_path / 'nothing'}", env={"PCPEFT_DEBUG": "1"})
    assert "Traceback" in env.stderr


@pytest.mark.parametrize("args, fragments", [
    (["--config", "cfgs/nope.yaml"], ["no such file and no shipped recipe", "nope.yaml"]),
    (["--config", "cfgs/finetune_synthetic.yaml", "--peft", "adaptr_x"], ["unknown PEFT method", "adaptr_x"]),
    (["--config", "cfgs/finetune_synthetic.yaml", "--opts", "model.name=pointmae"], ["did you mean 'point_mae'"]),
    (["--config", "cfgs/finetune_synthetic.yaml", "--ckpts", "nothing.pth"], ["checkpoint file not found"]),
    (["--config", "cfgs/finetune_synthetic.yaml", "--exp_name", "/etc/x"], ["inside the experiments root"]),
    (["--config", "cfgs/finetune_synthetic.yaml", "--opts", "train.batch_size=x"], ["train.batch_size = 'x'"]),
])
def test_train_tool_bad_inputs(tmp_path, args, fragments):
    assert_user_error(tool(TOOLS / "train.py", *args, "--experiments", tmp_path, "--no_progress"), *fragments)


def test_test_tool_bad_inputs(tmp_path, demo_root):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(demo_root)))
    assert_user_error(tool(TOOLS / "test.py", "--config", recipe), "needs --ckpts")
    assert_user_error(tool(TOOLS / "test.py", "--config", recipe, "--adapter", tmp_path), "adapter file not found")
    (tmp_path / "noise.pth").write_bytes(b"\x00garbage" * 100)
    assert_user_error(tool(TOOLS / "test.py", "--config", recipe, "--ckpts", tmp_path / "noise.pth"),
                      "noise.pth is not a PyTorch checkpoint")
    proc = tool(TOOLS / "test.py", "--config", recipe, "--ckpts", tmp_path / "noise.pth", "--vote", "-1")
    assert proc.returncode == 2 and "must be 0 or more" in proc.stderr and "Traceback" not in proc.stderr


def test_visualize_tool_bad_inputs_and_the_positional_cloud_file(tmp_path, shared_dir):
    mesh = sorted((shared_dir / "data/modelnet_off_samples").rglob("*.off"))[0]
    proc = tool(TOOLS / "visualize.py", "cloud", mesh, "--out", tmp_path / "c.png", "--renderer", "matplotlib")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "c.png").stat().st_size > 1000
    assert_user_error(tool(TOOLS / "visualize.py", "cloud", tmp_path / "none.ply", "--out", tmp_path / "x.png"),
                      "none.ply")
    assert_user_error(tool(TOOLS / "visualize.py", "cloud", mesh, "--color", "rgb", "--out", tmp_path / "x.png"),
                      "has no colours")


def test_pretrain_and_demo_tools_bad_inputs(tmp_path):
    assert_user_error(tool(TOOLS / "pretrain.py", "--config", tmp_path / "none.yaml", "--out_dir", tmp_path / "o"),
                      "no such file and no shipped recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: point_mae}\ndataset: {name: SyntheticDemo, root: x}\npretrain: {mask_ratio: 1.5}\n")
    assert_user_error(tool(TOOLS / "pretrain.py", "--config", bad, "--out_dir", tmp_path / "o"), "pretrain.mask_ratio")


def test_resume_of_a_truncated_checkpoint_is_one_clear_error(tmp_path, demo_root):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(demo_root, epochs=2)))
    cmd = [TOOLS / "train.py", "--config", recipe, "--experiments", tmp_path, "--exp_name", "cut", "--no_progress"]
    assert tool(*cmd, "--opts", "scheduler.epochs=1").returncode == 0
    ckpt = tmp_path / "tiny/cut/ckpt-last.pth"
    ckpt.write_bytes(ckpt.read_bytes()[:2000])
    assert_user_error(tool(*cmd, "--resume"), "ckpt-last.pth", "truncated or corrupt")


def test_from_pretrained_validates_before_touching_the_backbone(tmp_path):
    from pcpeft.peft import PeftModel

    spec = {k: v for k, v in TINY_MODEL.items() if k != "name"}
    torch.manual_seed(0)
    trained = pcpeft.get_peft_model(pcpeft.create_model("point_mae", **spec), "adapter_x")
    trained.save_pretrained(tmp_path / "ad")

    def untouched(backbone):
        return not any(len(b.mlp_branches) for b in backbone.block_stack) and all(
            p.requires_grad for p in backbone.parameters())

    wider = pcpeft.create_model("point_mae", **{**spec, "trans_dim": 32, "encoder_dims": 32})
    with pytest.raises(pcpeft.CheckpointError, match="architecture differs: encoder_dims saved 64, here 32"):
        PeftModel.from_pretrained(wider, tmp_path / "ad")
    assert untouched(wider)
    torch.manual_seed(1)
    other_weights = pcpeft.create_model("point_mae", **spec)
    with pytest.raises(pcpeft.CheckpointError, match="same architecture, but the backbone's frozen weights differ"):
        PeftModel.from_pretrained(other_weights, tmp_path / "ad")
    assert untouched(other_weights)
    for name, content in (("adapter_config.json", b"{not json"), ("adapter_model.safetensors", b"\x01\x02")):
        broken = tmp_path / f"broken_{name}"
        broken.mkdir()
        for f in (tmp_path / "ad").iterdir():
            (broken / f.name).write_bytes(content if f.name == name else f.read_bytes())
        with pytest.raises(pcpeft.CheckpointError, match=name):
            PeftModel.from_pretrained(other_weights, broken)
        assert untouched(other_weights)
    torch.manual_seed(0)
    same = pcpeft.create_model("point_mae", **spec)
    restored = PeftModel.from_pretrained(same, tmp_path / "ad")
    points = torch.rand(2, 256, 3)
    trained.eval(), restored.eval()
    assert torch.equal(trained(points), restored(points))


def test_test_tool_evaluates_an_adapter_trained_from_random_init(tmp_path, demo_root):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(demo_root, epochs=1)))
    trained = tool(TOOLS / "train.py", "--config", recipe, "--experiments", tmp_path, "--exp_name", "ax", "--peft",
                   "adapter_x", "--seed", "4", "--no_progress")
    assert trained.returncode == 0, trained.stderr[-2000:]
    proc = tool(TOOLS / "test.py", "--config", recipe, "--adapter", tmp_path / "tiny/ax/adapter-best", "--out",
                tmp_path / "t.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    best = json.loads((tmp_path / "tiny/ax/results.json").read_text())["best"]
    assert json.loads((tmp_path / "t.json").read_text())["overall_acc"] == pytest.approx(best["overall_acc"])


# -- 5. CLI consistency --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["train", "test", "pretrain", "visualize", "demo", "bench", "compare_modalities",
                                  "prepare_modelnet", "predict", "export"])
def test_every_tool_help_shows_an_example(name):
    proc = tool(TOOLS / f"{name}.py", "--help")
    assert proc.returncode == 0 and "examples:\n  pcpeft " in proc.stdout and "--debug" in proc.stdout


def test_visualize_tsne_refuses_a_checkpoint_that_does_not_fit(tmp_path, demo_root):
    wide = pcpeft.create_model("point_mae", **{**{k: v for k, v in TINY_MODEL.items() if k != "name"},
                                               "trans_dim": 32, "encoder_dims": 32})
    torch.save({"base_model": wide.state_dict()}, tmp_path / "wide.pth")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_config(demo_root)))
    proc = tool(TOOLS / "visualize.py", "tsne", "--config", recipe, "--ckpts", tmp_path / "wide.pth", "--peft", "ssf",
                "--out", tmp_path / "t.png")
    assert_user_error(proc, "wide.pth does not fit the model")
    assert not (tmp_path / "t.png").exists()
