import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import pcpeft
from pcpeft.datasets import write_demo_dataset
from pcpeft.engine.recipe.yaml_io import ConfigError, apply_overrides, load_config, save_config
from pcpeft.engine.runs.training_state import load_training_state
from pcpeft.engine.training.finetune import RunOptions, evaluate_run, load_for_test, smoothed_cross_entropy, train
from pcpeft.engine.training.optim import CosineWarmupSchedule, param_groups
from pcpeft.engine.training.prediction import compute_metrics

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = dict(name="point_mae", num_classes=12, trans_dim=64, encoder_dims=64, depth=1, num_heads=2,
                  num_group=16, group_size=8, drop_path_rate=0.1)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    write_demo_dataset(root, train_per_class=4, test_per_class=2)
    return root


def tiny_config(data_root, epochs=3, lr=2e-3, **dataset):
    return {
        "model": dict(TINY_MODEL),
        "dataset": {"name": "SyntheticDemo", "root": str(data_root), "npoints": 256, **dataset},
        "optimizer": {"lr": lr, "weight_decay": 0.05},
        "scheduler": {"epochs": epochs, "warmup_epochs": 0},
        "train": {"batch_size": 8, "num_workers": 0},
    }


def run(config, tmp_path, name="run", **opts):
    options = RunOptions(config_path="tiny.yaml", exp_name=name, experiments_root=str(tmp_path), progress=False,
                         **opts)
    return train(config, options), tmp_path / "tiny" / name


# -- config --------------------------------------------------------------------------------------------------------
def test_recipe_bases_merge_and_round_trip(tmp_path):
    config = load_config(ROOT / "cfgs/finetune_scan_hardest.yaml")
    assert config["dataset"]["split"] == "PB_T50_RS" and config["model"]["name"] == "point_mae"
    assert config["model"]["num_group"] == 128 and config["optimizer"]["lr"] == 5e-4
    bert = load_config(ROOT / "cfgs/point_bert/finetune_modelnet.yaml")
    assert bert["model"]["encoder_dims"] == 256 and bert["train"]["label_smoothing"] == 0.2
    assert bert["train"]["batch_size"] == 32  # merged, not replaced, by the recipe's own train section
    changed = apply_overrides(config, ["train.batch_size=16", "peft=adapter_x", "augmentation.rotate=true"])
    assert changed["train"]["batch_size"] == 16 and changed["peft"] == "adapter_x" and changed["augmentation"]["rotate"]
    save_config(changed, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == changed


def test_every_recipe_resolves_to_a_buildable_model():
    for path in sorted((ROOT / "cfgs").rglob("*.yaml")):
        config = load_config(path)
        if config.get("task") == "partseg":
            continue  # the segmentation recipes: tests/engine/test_partseg_engine.py builds them at full depth
        if "dataset" in config and "name" in config.get("model", {}):
            spec = dict(config["model"])
            model = pcpeft.create_model(spec.pop("name"), **{k: v for k, v in spec.items() if k != "depth"}, depth=1)
            # a folder recipe takes its class count from the user's folders (cfgs/finetune_folder.yaml)
            assert model.num_classes == config["model"].get("num_classes", model.num_classes), path


def test_config_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="not found: .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.batch_size"])


# -- optimisation --------------------------------------------------------------------------------------------------
def test_cosine_schedule_matches_the_reference_formula():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=5e-4)
    sched = CosineWarmupSchedule(opt, epochs=300, warmup_epochs=10, warmup_lr=1e-6, min_lr=1e-6)
    expected = {0: 1e-6, 5: 1e-6 + 5 * (5e-4 - 1e-6) / 10,
                10: 1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + math.cos(math.pi * 10 / 300)),
                299: 1e-6 + 0.5 * (5e-4 - 1e-6) * (1 + math.cos(math.pi * 299 / 300))}
    for epoch, lr in expected.items():
        sched.step(epoch)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12)


def test_no_weight_decay_on_biases_norms_and_tokens():
    model = pcpeft.create_model("point_mae", **{k: v for k, v in TINY_MODEL.items() if k != "name"})
    no_decay, decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay["params"]} >= {"cls_token", "norm.weight", "norm.bias"}
    # the reference rule (1-D, '.bias', 'token' in the name) decays cls_pos: (1, 1, D), no 'token' in its name
    assert "cls_pos" in {names[id(p)] for p in decay["params"]}
    assert no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and decay["weight_decay"] == 0.05
    assert all(not names[id(p)].endswith(".bias") for p in decay["params"])


def test_point_bert_label_smoothing():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    target = torch.tensor([0])
    soft = torch.tensor([[0.8, 0.1, 0.1]])
    expected = -(soft * torch.log_softmax(logits, 1)).sum()
    assert torch.isclose(smoothed_cross_entropy(logits, target, 0.2), expected)
    assert torch.isclose(smoothed_cross_entropy(logits, target, 0.0), torch.nn.functional.cross_entropy(logits, target))


def test_metrics():
    logits = torch.eye(3)[[0, 1, 2, 2, 0]]
    labels = torch.tensor([0, 1, 2, 1, 1])
    m = compute_metrics(logits, labels, 3)
    assert m["overall_acc"] == pytest.approx(60.0) and m["mean_class_acc"] == pytest.approx(100 * (1 + 1 / 3 + 1) / 3)
    assert m["confusion_matrix"][1] == [1, 1, 1]


# -- training runs -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["full", "adapter_x"])
def test_training_on_scanobjectnn_layout_lowers_the_loss_and_writes_the_experiment(tmp_path, demo_root, method):
    results, exp = run(tiny_config(demo_root, epochs=4), tmp_path, peft=method)
    losses = [e["train_loss"] for e in results["history"]]
    assert losses[-1] < losses[0], losses
    for name in ["config.yaml", "log.txt", "ckpt-last.pth", "ckpt-best.pth", "results.json"]:
        assert (exp / name).is_file(), name
    assert list((exp / "tb").glob("events.out.tfevents.*"))
    saved = json.loads((exp / "results.json").read_text())
    for key in ["last", "best", "note", "seed", "npoints", "augmentation", "trainable_parameters", "split",
                "voting", "synthetic"]:
        assert key in saved
    assert len(saved["last"]["confusion_matrix"]) == 12 and saved["synthetic"] is True
    assert (exp / "adapter-best").is_dir() == (method != "full")
    if method == "adapter_x":
        assert any(e["aux_loss"] > 0 for e in results["history"])


def modelnet_root(tmp_path, classes=3, per_class=4):
    root = tmp_path / "mn"
    root.mkdir()
    names = [f"shape{c}" for c in range(classes)]
    (root / "modelnet40_shape_names.txt").write_text("\n".join(names))
    rng = np.random.default_rng(0)
    for subset in ("train", "test"):
        points = [np.concatenate([rng.normal(size=(400, 3)) * (1 + c) * np.array([1, 0.2 + c, 1]),
                                  rng.normal(size=(400, 3))], 1).astype(np.float32)
                  for c in range(classes) for _ in range(per_class)]
        labels = [np.array([c], dtype=np.int32) for c in range(classes) for _ in range(per_class)]
        with open(root / f"modelnet40_{subset}_400pts_fps.dat", "wb") as f:
            pickle.dump([points, labels], f)
    return root


def test_training_on_modelnet_layout_lowers_the_loss(tmp_path):
    config = tiny_config(None, epochs=12)
    config["dataset"] = {"name": "ModelNet40", "root": str(modelnet_root(tmp_path, per_class=8)), "cache_points": 400,
                         "npoints": 256}
    config["model"]["num_classes"] = 3
    results, _ = run(config, tmp_path, peft="ssf")
    losses = [e["train_loss"] for e in results["history"]]
    # 12 clouds for 6 epochs (1-2 steps each) was too short: under torch 2.11's numerics seed 0's first epoch read
    # 0.89 and its last three 1.01. With 24 clouds for 12 epochs the mean of the last three was below the first by
    # 0.54-0.74 (torch 2.13 and 2.14.1) and 0.43-0.77 (torch 2.11) over seeds 0-4 (measured); 0.2 is under half the
    # smallest
    assert np.mean(losses[-3:]) < losses[0] - 0.2, losses


def test_fewshot_training_lowers_the_loss(tmp_path):
    folder = tmp_path / "fs" / "3way_4shot"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    make = lambda n: [(np.concatenate([rng.normal(size=(300, 3)) * np.array([1, 1 + 2 * (i % 3), 1]),  # noqa
                                       rng.normal(size=(300, 3))], 1).astype(np.float32), i % 3, None)
                      for i in range(n)]
    with open(folder / "0.pkl", "wb") as f:
        pickle.dump({"train": make(12), "test": make(6)}, f)
    config = tiny_config(None, epochs=4)
    config["dataset"] = {"name": "ModelNetFewShot", "root": str(tmp_path / "fs"), "way": 3, "shot": 4, "fold": 0,
                         "npoints": 256}
    config["model"]["num_classes"] = 3
    results, _ = run(config, tmp_path, peft="full")
    losses = [e["train_loss"] for e in results["history"]]
    assert losses[-1] < losses[0], losses


def test_resume_between_epochs_is_exact(tmp_path, demo_root):
    config = tiny_config(demo_root, epochs=3)
    full, exp_a = run(config, tmp_path, name="a", peft="adapter_x", seed=3)
    run(config, tmp_path, name="b", peft="adapter_x", seed=3, stop_after_epochs=1)  # "killed" after epoch 1
    assert load_training_state(tmp_path / "tiny/b/ckpt-last.pth")["epoch"] == 0
    resumed, exp_b = run(config, tmp_path, name="b", peft="adapter_x", seed=3, resume=True)
    a, b = load_training_state(exp_a / "ckpt-last.pth"), load_training_state(exp_b / "ckpt-last.pth")
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [e["train_loss"] for e in full["history"]] == [e["train_loss"] for e in resumed["history"]]


def test_resume_after_a_kill_mid_epoch_is_exact(tmp_path, demo_root):
    config = tiny_config(demo_root, epochs=3)
    config["model"]["depth"] = 2
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, str(ROOT / "tools/train.py"), "--config", str(tmp_path / "tiny.yaml"), "--peft", "full",
           "--experiments", str(tmp_path), "--no_progress", "--seed", "1"]
    subprocess.run(cmd + ["--exp_name", "straight"], check=True, capture_output=True)
    proc = subprocess.Popen(cmd + ["--exp_name", "killed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "tiny/killed/ckpt-last.pth"
    deadline = time.time() + 120
    while not ckpt.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch_at_kill = load_training_state(ckpt)["epoch"]
    subprocess.run(cmd + ["--exp_name", "killed", "--resume"], check=True, capture_output=True)
    a = load_training_state(tmp_path / "tiny/straight/ckpt-last.pth")
    b = load_training_state(ckpt)
    assert epoch_at_kill < 2 and a["epoch"] == b["epoch"] == 2
    for key, value in a["base_model"].items():
        assert torch.equal(value, b["base_model"][key]), key


def test_test_tool_paths_and_voting_at_2048_points(tmp_path, demo_root):
    config = tiny_config(demo_root, epochs=1)
    spec = {k: v for k, v in config["model"].items() if k != "name"}
    pretrained = tmp_path / "backbone.pth"
    torch.save({"base_model": pcpeft.create_model("point_mae", **spec).state_dict()}, pretrained)
    run(config, tmp_path, name="full", peft="full")
    run(config, tmp_path, name="ax", peft="adapter_x", ckpts=str(pretrained))
    model = load_for_test(config, str(tmp_path / "tiny/full/ckpt-best.pth"), None, torch.device("cpu"))
    one = evaluate_run(config, model, torch.device("cpu"), vote=False)
    assert one["samples"] == 24
    with pytest.raises(ValueError, match="adapter weights only"):
        load_for_test(config, str(tmp_path / "tiny/ax/ckpt-best.pth"), None, torch.device("cpu"))
    adapter = load_for_test(config, str(pretrained), str(tmp_path / "tiny/ax/adapter-best"), torch.device("cpu"))
    assert evaluate_run(config, adapter, torch.device("cpu"), vote=False)["samples"] == 24
    config2048 = {**config, "dataset": {**config["dataset"], "npoints": 2048}}
    voted = evaluate_run(config2048, model, torch.device("cpu"), vote=True, times=2)
    assert voted["voting"] and voted["samples"] == 24 and 0 <= voted["overall_acc"] <= 100


def test_two_process_gloo_ddp_evaluates_exactly_the_dataset(tmp_path, demo_root):
    config = tiny_config(demo_root, epochs=1)
    config["dataset"]["test_per_class"] = 2
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--config", str(tmp_path / "tiny.yaml"), "--peft", "full", "--experiments", str(tmp_path),
              "--no_progress"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    ddp = subprocess.run(torchrun + [str(ROOT / "tools/train.py"), *common, "--exp_name", "ddp"],
                         capture_output=True, text=True, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert (tmp_path / "tiny/ddp/ckpt-best.pth").is_file()
    ckpt = str(tmp_path / "tiny/ddp/ckpt-best.pth")
    test_cmd = [str(ROOT / "tools/test.py"), "--config", str(tmp_path / "tiny.yaml"), "--ckpts", ckpt]
    single = subprocess.run([sys.executable, *test_cmd, "--out", str(tmp_path / "one.json")], capture_output=True,
                            text=True, env=env, check=True)
    double = subprocess.run(torchrun + [*test_cmd, "--out", str(tmp_path / "two.json")], capture_output=True,
                            text=True, env=env)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["samples"] == two["samples"] == 24
    assert one["overall_acc"] == two["overall_acc"] and one["confusion_matrix"] == two["confusion_matrix"]
    assert single.returncode == 0


def test_pretrain_then_finetune_from_it(tmp_path, demo_root):
    from pcpeft.engine.training.pretrain import pretrain

    config = tiny_config(demo_root, epochs=1)
    config["pretrain"] = {"decoder_depth": 1, "decoder_num_heads": 2}
    ckpt = pretrain(config, tmp_path / "pre", progress=False)
    state = torch.load(ckpt, weights_only=False)["base_model"]
    assert any(k.startswith("MAE_encoder.blocks.blocks.0.") for k in state) and "mask_token" in state
    results, _ = run(config, tmp_path, name="from_pre", peft="linear", ckpts=str(ckpt))
    assert results["pretrained"] == str(ckpt)
    log = (tmp_path / "tiny/from_pre/log.txt").read_text()
    assert "layout: point_mae_pretrain" in log and "every key accounted for" in log


def test_demo_runs_end_to_end_in_tiny_size(tmp_path):
    from pcpeft.experiments.demo import run_demo

    summary = run_demo(tmp_path / "demo", size="tiny", progress=False)
    methods = [(r["method"], r["init"]) for r in summary["rows"]]
    assert methods == [("full (random init)", "scratch"), ("full", "pretrained"), ("linear", "pretrained"),
                       ("ssf", "pretrained"), ("adapter_x", "pretrained")]
    saved = json.loads((tmp_path / "demo/results.json").read_text())
    assert set(saved) >= {"rows", "merged_ssf_test_acc", "backbone_sha256", "seconds"}
    for row in saved["rows"]:
        assert set(row) >= {"method", "init", "trainable_pct", "val_acc", "test_acc", "test_acc_last"}
        assert all(0 <= row[k] <= 100 for k in ("val_acc", "test_acc", "test_acc_last"))
    ssf = next(r for r in saved["rows"] if r["method"] == "ssf")
    assert saved["merged_ssf_test_acc"] == pytest.approx(ssf["test_acc"])
    assert "SYNTHETIC" in summary["table"] and "epoch chosen on val" in summary["table"]
    assert (tmp_path / "demo/routing.png").stat().st_size > 1000


def test_demo_amp_trains_its_rows_under_cpu_bf16_and_says_so(tmp_path):
    from pcpeft.engine.training.precision import cpu_native_bf16
    from pcpeft.experiments.demo import run_demo

    summary = run_demo(tmp_path / "demo", size="tiny", progress=False, amp=True)
    native = cpu_native_bf16()[0]
    assert summary["precision"].startswith("training steps in bf16" if native else "training steps in fp32")
    assert "precision: training steps in" in summary["table"]
    log = (tmp_path / "demo/runs/demo/adapter_x/log.txt").read_text()
    assert ("precision: bf16" if native else "precision: fp32") in log


def test_the_demo_refuses_a_changed_backbone_file(tmp_path):
    import shutil

    from pcpeft.experiments.demo import BACKBONE, BACKBONE_RECORD, BackboneChecksumError, verified_backbone

    assert verified_backbone()[1] == json.loads(BACKBONE_RECORD.read_text())["sha256"]
    copy = tmp_path / BACKBONE.name
    shutil.copy(BACKBONE, copy)
    with open(copy, "r+b") as handle:  # flip one byte of the tensor data
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    with pytest.raises(BackboneChecksumError, match="differs from the recorded"):
        verified_backbone(copy, BACKBONE_RECORD)
