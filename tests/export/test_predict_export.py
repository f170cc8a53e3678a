"""A trained folder run as a model: pcpeft.load_run against the trainer's own evaluation, the backbone
record and its sha256, tools/predict.py (JSON, top-k, voting, a corrupt file among good ones) and the exports
(ONNX in onnxruntime for full, merged SSF, merged LoRA and adapter_x; safetensors), each compared to PyTorch."""
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import pcpeft
from pcpeft.commands import main
from pcpeft.datasets.point_folder import prepare_cloud
from pcpeft.engine.data import build_dataset
from pcpeft.engine.data import test_transform as eval_transform
from pcpeft.engine.recipe.schema import validate_recipe
from pcpeft.engine.runs.loading import RunLoadError, read_run_config
from pcpeft.engine.runs.predict_files import run_preprocessing
from pcpeft.engine.training.finetune import RunOptions, train
from pcpeft.engine.training.model_setup import load_for_test
from pcpeft.engine.training.prediction import compute_metrics, predict
from pcpeft.export.deploy import random_clouds
from pcpeft.models.checkpoints import CheckpointError
from tests.folder_data import FOLDER_CLASSES, TINY_MODEL, folder_recipe, write_point_folder

ROOT = Path(__file__).resolve().parents[2]
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnx / onnxruntime are not installed (pip install onnx "
                                                   "onnxruntime); CI installs them from requirements.txt")
#: run name -> (method, trained from the pretrained file?)
RUNS = {"full": ("full", True), "ssf": ("ssf", True), "lora": ("lora", False), "adapter_x": ("adapter_x", True)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    data = write_point_folder(base / "scans", per_class=6)
    torch.manual_seed(3)
    pretrained = base / "pretrain.pth"
    torch.save({"base_model": pcpeft.create_model(num_classes=3, **TINY_MODEL).state_dict()}, pretrained)
    folders = {}
    for name, (method, with_ckpts) in RUNS.items():
        options = RunOptions(config_path="folder.yaml", exp_name=name, experiments_root=str(base / "exp"),
                             progress=False, peft=method, ckpts=str(pretrained) if with_ckpts else None)
        train(folder_recipe(data, epochs=2), options)
        folders[name] = base / "exp" / "folder" / name
    return {"data": data, "pretrained": pretrained, "base": base, **folders}


def _test_split_logits(model, run_dir):
    settings = validate_recipe(read_run_config(run_dir))
    test_set = build_dataset(settings.dataset, "test")
    return predict(model, test_set, eval_transform(settings.dataset.npoints), torch.device("cpu"), 4)


@pytest.mark.parametrize("name", list(RUNS))
def test_load_run_gives_the_trainers_evaluation(runs, name):
    run_dir = runs[name]
    model = pcpeft.load_run(run_dir)
    assert not model.training and model.class_names == FOLDER_CLASSES
    logits, labels = _test_split_logits(model, run_dir)
    best = json.loads((run_dir / "results.json").read_text())["best"]
    metrics = compute_metrics(logits, labels, 3)
    assert metrics["confusion_matrix"] == best["confusion_matrix"]  # what the trainer measured on this checkpoint
    assert metrics["overall_acc"] == pytest.approx(best["overall_acc"])
    # tools/test.py's own loading path (an adapter on its backbone, or the fine-tuned checkpoint) gives the same
    settings = validate_recipe(model.run_config)
    method, with_ckpts = RUNS[name]
    if method == "full":
        reference = load_for_test(settings, str(run_dir / "ckpt-best.pth"), None, torch.device("cpu"))
    else:
        reference = load_for_test(settings, str(runs["pretrained"]) if with_ckpts else None,
                                  str(run_dir / "adapter-best"), torch.device("cpu"))
    expected, _ = _test_split_logits(reference, run_dir)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-6)


def test_the_recorded_backbone_is_found_moved_or_given_and_its_sha256_checked(runs, tmp_path):
    run_dir = runs["adapter_x"]
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved)
    config = (moved / "config.yaml").read_text()
    (moved / "config.yaml").write_text(config.replace(str(runs["pretrained"]), str(tmp_path / "gone.pth")))
    with pytest.raises(RunLoadError, match=r"was trained on the backbone .*gone\.pth.*backbone="):
        pcpeft.load_run(moved)
    copy = tmp_path / "my_copy.pth"
    shutil.copy(runs["pretrained"], copy)
    points = random_clouds(2, 256)
    with torch.no_grad():
        torch.testing.assert_close(pcpeft.load_run(moved, backbone=copy)(points), pcpeft.load_run(run_dir)(points))
    other = tmp_path / "other.pth"
    state = torch.load(runs["pretrained"], weights_only=True)
    state["base_model"]["norm.weight"] = state["base_model"]["norm.weight"] + 1
    torch.save(state, other)
    with pytest.raises(CheckpointError, match=r"other\.pth: sha256 .* is not that of the backbone"):
        pcpeft.load_run(moved, backbone=other)


def test_load_run_refuses_a_folder_that_is_no_run(tmp_path):
    with pytest.raises(RunLoadError, match="not a run folder"):
        pcpeft.load_run(tmp_path)


def _tool(name, *args, capsys):
    """Run ``pcpeft <name> ARGS`` in this process, as its command line does (exit status, error lines)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([name, *map(str, args)])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, exit_.value.code, out, err)


def test_predict_json_agrees_with_load_run_and_reports_a_corrupt_file(runs, tmp_path, capsys):
    run_dir = runs["adapter_x"]
    inputs = tmp_path / "incoming"
    shutil.copytree(runs["data"] / "lamp", inputs / "nested" / "lamp")
    shutil.copy(runs["data"] / "table" / "table_003.xyz", inputs / "t.xyz")
    corrupt = inputs / "nested" / "corrupt.pcd"
    corrupt.write_bytes(b"# .PCD v0.7\nFIELDS x y z\nDATA binary\n\x00\x01")
    proc = _tool("predict", run_dir, inputs, "--json", "--batch_size", "3", "--no_progress", capsys=capsys)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: {corrupt}: malformed PCD header" in proc.stderr and "1 of 8 inputs failed" in proc.stderr
    assert "Traceback" not in proc.stderr
    rows = json.loads(proc.stdout)
    files = sorted(p for p in inputs.rglob("*") if p.is_file() and p != corrupt)
    assert sorted(Path(r["file"]) for r in rows) == files
    model = pcpeft.load_run(run_dir)
    preprocessing = run_preprocessing(validate_recipe(model.run_config))
    clouds = torch.from_numpy(np.stack([prepare_cloud(r["file"], preprocessing) for r in rows]))
    with torch.no_grad():
        probs = torch.softmax(model(clouds).double(), dim=1).numpy()
    for row, expected in zip(rows, probs):
        assert set(row) == {"file", "class", "prob", "probs"} and list(row["probs"]) == list(FOLDER_CLASSES)
        np.testing.assert_allclose([row["probs"][c] for c in FOLDER_CLASSES], expected, atol=1e-6)
        assert row["class"] == FOLDER_CLASSES[int(expected.argmax())] and row["prob"] == max(row["probs"].values())


def test_predict_topk_lines_and_voting(runs, capsys):
    files = [runs["data"] / "bottle" / "bottle_000.ply", runs["data"] / "table" / "table_005.off"]
    proc = _tool("predict", runs["full"], *files, "--topk", "2", "--vote", "2", capsys=capsys)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(f) for f in files]
    for line in lines:
        (first, p1), (second, p2) = (part.split() for part in line.split(": ")[1].split(", "))
        assert first in FOLDER_CLASSES and second in FOLDER_CLASSES and first != second
        assert 1.0 >= float(p1) >= float(p2) >= 0.0


@needs_ort
@pytest.mark.parametrize("name", list(RUNS))
def test_onnx_export_matches_pytorch(runs, name, tmp_path):
    from pcpeft.export import export_onnx, verify_onnx

    model = pcpeft.load_run(runs[name])
    info = export_onnx(model, tmp_path / f"{name}.onnx", 256, model.class_names)
    assert info["merged"] == (name in ("full", "ssf", "lora"))
    assert verify_onnx(model, tmp_path / f"{name}.onnx", 256, batches=(1, 2, 5)) < 1e-4
    if name in ("ssf", "lora"):  # merged: no adapter layers left in the graph
        import onnx

        proto = onnx.load(str(tmp_path / f"{name}.onnx"))
        assert not any(key in init.name for init in proto.graph.initializer for key in ("ssf_", "lora_"))
        assert json.loads({p.key: p.value for p in proto.metadata_props}["class_names"]) == list(FOLDER_CLASSES)


@needs_ort
def test_export_tool_onnx_verify_and_a_refused_method(runs, tmp_path, capsys):
    out = tmp_path / "ax.onnx"
    proc = _tool("export", runs["adapter_x"], "--format", "onnx", "--out", out, "--verify", capsys=capsys)
    assert proc.returncode == 0, proc.stderr[-2000:]
    diff = float(proc.stdout.split("max |logits PyTorch - onnx| = ")[1].split()[0])
    assert diff < 1e-4 and out.is_file()
    from pcpeft.export import ExportError, export_onnx

    backbone = pcpeft.create_model(num_classes=3, **TINY_MODEL)
    with pytest.raises(ExportError, match=r"'pointgst' cannot be exported: .*eigendecomposition"):
        export_onnx(pcpeft.get_peft_model(backbone, "pointgst"), tmp_path / "gst.onnx", 256)


def test_safetensors_export_loads_without_pickles(runs, tmp_path, capsys):
    out = tmp_path / "ssf.safetensors"
    proc = _tool("export", runs["ssf"], "--format", "safetensors", "--out", out, "--verify", capsys=capsys)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "merged into the backbone" in proc.stdout
    assert float(proc.stdout.split("max |logits PyTorch - safetensors| = ")[1].split()[0]) < 1e-4
    from safetensors import safe_open

    from pcpeft.export import load_exported

    with safe_open(str(out), "pt") as handle:
        meta = handle.metadata()
        assert not any("ssf_" in key for key in handle.keys())
    assert json.loads(meta["model"])["trans_dim"] == 64 and json.loads(meta["merged"]) is True
    loaded = load_exported(out)
    model = pcpeft.load_run(runs["ssf"])
    clouds = torch.from_numpy(np.stack([prepare_cloud(f, run_preprocessing(validate_recipe(model.run_config)))
                                        for f in sorted((runs["data"] / "lamp").iterdir())]))
    with torch.no_grad():
        torch.testing.assert_close(loaded(clouds), model(clouds), rtol=0, atol=1e-5)
    assert loaded.class_names == FOLDER_CLASSES and loaded.preprocessing["npoints"] == 256
