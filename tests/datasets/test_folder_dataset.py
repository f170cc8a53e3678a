"""PointCloudFolder: a folder of classes in every file format, the seeded split and the split folders,
the preprocessing cache, every error naming its file, and training through tools/train.py with the folder recipe."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import pcpeft
from pcpeft.datasets import point_folder
from pcpeft.datasets.errors import DatasetError
from pcpeft.datasets.point_files import write_cloud
from pcpeft.datasets.point_folder import PointCloudFolder, Preprocessing, prepare_cloud
from pcpeft.engine.data import build_dataset
from pcpeft.engine.recipe.schema import validate_recipe
from pcpeft.engine.runs.loading import file_sha256
from tests.folder_data import FOLDER_CLASSES, TINY_MODEL, write_point_folder

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(npoints=256, mesh_points=1024)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return write_point_folder(tmp_path_factory.mktemp("pool") / "scans", per_class=6)


def test_every_format_is_read_split_and_normalised(pool):
    suffixes = {p.name[p.name.index("."):] for p in pool.rglob("*.*") if p.is_file()}
    assert suffixes == {".ply", ".pcd", ".xyz", ".npy", ".off"}
    train = PointCloudFolder(pool, "train", cache=False, **SMALL)
    test = PointCloudFolder(pool, "test", cache=False, **SMALL)
    assert train.classes == test.classes == FOLDER_CLASSES
    assert train.points.shape == (len(train), 256, 3) and len(train) + len(test) == 18
    assert not set(train.files) & set(test.files)
    for label in range(3):  # stratified: every class in both splits (6 files: 1 to test at 0.2)
        assert (test.labels == label).sum() == 1 and (train.labels == label).sum() == 5
    for cloud in np.concatenate([train.points, test.points]):
        assert np.abs(cloud.mean(axis=0)).max() < 1e-5
        assert np.linalg.norm(cloud, axis=1).max() == pytest.approx(1.0, abs=1e-5)
    ascii_ply = next(f for f in train.files + test.files if f.name == "bottle_001.ply")
    assert ascii_ply.read_bytes().startswith(b"ply\nformat ascii")
    points, label = train[0]
    assert points.dtype == torch.float32 and points.shape == (256, 3) and isinstance(label, int)


def test_the_seeded_split_depends_on_its_seed_only(pool):
    a, b = point_folder.scan_point_folder(pool, 0.2, 0), point_folder.scan_point_folder(pool, 0.2, 0)
    c = point_folder.scan_point_folder(pool, 0.2, 1)
    assert a.files == b.files and a.files["test"] != c.files["test"]
    assert a.record()["layout"] == "seeded" and set(a.record()["test"]) == {rel for rel, _ in a.files["test"]}


def test_split_folders_with_val(tmp_path):
    root = write_point_folder(tmp_path / "split", per_class=6, layout="split")
    (root / "val").mkdir()
    for name in FOLDER_CLASSES[:2]:  # a val split may lack classes
        (root / "val" / name).mkdir()
        os.replace(root / "train" / name / f"{name}_000.ply", root / "val" / name / f"{name}_000.ply")
    spec = {"name": "PointCloudFolder", "root": str(root), **SMALL}
    train, test, val = (build_dataset(spec, s) for s in ("train", "test", "val"))
    assert (len(train), len(test), len(val)) == (10, 6, 2)
    assert val.labels.tolist() == [0, 1] and test.classes == FOLDER_CLASSES
    assert all("/test/" in str(f) for f in test.files)


def test_the_cache_is_keyed_by_files_sizes_mtimes_and_settings(tmp_path, monkeypatch):
    root = write_point_folder(tmp_path / "c", per_class=3)
    reads = []
    real = point_folder.prepare_cloud
    monkeypatch.setattr(point_folder, "prepare_cloud", lambda path, s: reads.append(Path(path).name) or real(path, s))
    first = PointCloudFolder(root, "train", **SMALL)
    assert len(reads) == len(first) and list((root / ".pcpeft-cache").glob("train-*.npz"))
    reads.clear()
    again = PointCloudFolder(root, "train", **SMALL)
    assert reads == [] and np.array_equal(again.points, first.points)
    changed = first.files[0]
    write_cloud(changed, np.random.default_rng(5).normal(size=(400, 3)))  # new size and mtime
    third = PointCloudFolder(root, "train", **SMALL)
    assert reads == [changed.name] and not np.array_equal(third.points[0], first.points[0])
    assert np.array_equal(third.points[1:], first.points[1:])
    reads.clear()
    PointCloudFolder(root, "train", npoints=128, mesh_points=1024)  # other settings: another cache entry
    assert len(reads) == len(first)


def test_prepare_cloud_is_fps_then_unit_sphere(tmp_path):
    cloud = np.random.default_rng(0).normal(size=(700, 3)).astype(np.float32) * 5 + 3
    path = write_cloud(tmp_path / "x.npy", cloud)
    prepared = prepare_cloud(path, Preprocessing(npoints=100))
    from pcpeft.datasets.modelnet import normalize_unit_sphere
    from pcpeft.ops import farthest_point_sample

    index = farthest_point_sample(torch.from_numpy(cloud[None]), 100)[0].numpy()
    np.testing.assert_allclose(prepared, normalize_unit_sphere(cloud[index].astype(np.float64)), atol=1e-6)


# -- errors, each naming the file or folder -------------------------------------------------------------------
def _expect(root, match, subset="train", **options):
    with pytest.raises(DatasetError, match=match):
        PointCloudFolder(root, subset, cache=False, **{**SMALL, **options})


def test_an_empty_class_folder_is_named(tmp_path):
    root = write_point_folder(tmp_path / "e", per_class=2)
    (root / "zebra").mkdir()
    (root / "zebra" / "notes.md").write_text("not a cloud")
    _expect(root, r"zebra: empty class folder")


def test_an_unreadable_file_is_named(tmp_path):
    root = write_point_folder(tmp_path / "u", per_class=3)
    (root / "lamp" / "broken.ply").write_bytes(b"\x00\x01garbage")
    for subset in ("train", "test"):  # whichever split the seeded draw put it in
        try:
            PointCloudFolder(root, subset, cache=False, **SMALL)
        except DatasetError as err:
            assert "broken.ply" in str(err) and "not a PLY file" in str(err)
            return
    pytest.fail("the broken file was not reported")


@pytest.mark.parametrize("content,match", [(b"", r"bottle_000\.xyz: empty file"),
                                           (b"\n\n", r"bottle_000\.xyz: the file holds no points"),
                                           (b"1 2\n3 4\n", r"bottle_000\.xyz: expected rows of at least 3")])
def test_an_empty_or_malformed_file_is_named(tmp_path, content, match):
    root = tmp_path / "m"
    for name in ("bottle", "lamp"):
        for i in range(2):
            (root / name).mkdir(parents=True, exist_ok=True)
            write_cloud(root / name / f"{name}_{i:03d}.xyz", np.random.default_rng(i).normal(size=(300, 3)))
    (root / "bottle" / "bottle_000.xyz").write_bytes(content)
    with pytest.raises(DatasetError, match=match):
        for subset in ("train", "test"):
            PointCloudFolder(root, subset, cache=False, **SMALL)


def test_fewer_points_than_asked_unless_upsampling(tmp_path):
    root = write_point_folder(tmp_path / "f", per_class=2, classes=("bottle", "lamp"))
    small = root / "lamp" / "small.npy"
    write_cloud(small, np.random.default_rng(0).normal(size=(50, 3)))
    with pytest.raises(DatasetError, match=r"small\.npy: 50 points, fewer than dataset\.npoints = 256.*upsample"):
        for subset in ("train", "test"):
            PointCloudFolder(root, subset, cache=False, **SMALL)
    both = [PointCloudFolder(root, s, cache=False, upsample=True, **SMALL) for s in ("train", "test")]
    assert sum(len(d) for d in both) == 5 and all(d.points.shape[1] == 256 for d in both)


def test_nan_points_are_refused_unless_dropped(tmp_path):
    root = write_point_folder(tmp_path / "n", per_class=2, classes=("bottle", "lamp"))
    cloud = np.random.default_rng(0).normal(size=(400, 3))
    cloud[7] = np.nan
    write_cloud(root / "bottle" / "holes.pcd", cloud, ascii=True)
    with pytest.raises(DatasetError, match=r"holes\.pcd: 1 of 400 points have NaN.*nan_points: drop"):
        for subset in ("train", "test"):
            PointCloudFolder(root, subset, cache=False, **SMALL)
    kept = [PointCloudFolder(root, s, cache=False, nan_points="drop", **SMALL) for s in ("train", "test")]
    assert all(np.isfinite(d.points).all() for d in kept)


def test_a_class_in_test_but_not_in_train_is_named(tmp_path):
    root = write_point_folder(tmp_path / "t", per_class=3, layout="split")
    (root / "test" / "ghost").mkdir()
    write_cloud(root / "test" / "ghost" / "g.npy", np.random.default_rng(0).normal(size=(300, 3)))
    _expect(root, r"test/ghost: class 'ghost' is in test/ but not in train/", subset="test")


def test_a_class_with_one_file_cannot_be_split(tmp_path):
    root = write_point_folder(tmp_path / "o", per_class=2)
    for extra in (root / "lamp").iterdir():
        if extra.name.endswith("001.ply"):
            extra.unlink()
    _expect(root, r"lamp: class 'lamp' has 1 file")


def test_the_recipe_takes_the_class_count_from_the_folder(pool):
    config = yaml.safe_load((ROOT / "cfgs" / "finetune_folder.yaml").read_text())
    from pcpeft.engine.recipe.yaml_io import apply_overrides, load_config

    settings = validate_recipe(apply_overrides(load_config(ROOT / "cfgs" / "finetune_folder.yaml"),
                                               [f"dataset.root={pool}"]))
    assert settings.num_classes == 3 and settings.dataset.npoints == 1024
    assert config["dataset"]["name"] == "PointCloudFolder"
    with pytest.raises(pcpeft.errors.UserError, match=r"unknown key 'dataset.test_fraktion'.*test_fraction"):
        validate_recipe({"model": {"num_classes": 3}, "dataset": {"name": "PointCloudFolder", "root": str(pool),
                                                                  "test_fraktion": 0.3}})


def test_train_py_with_the_folder_recipe(tmp_path, pool):
    torch.manual_seed(1)
    pretrained = tmp_path / "pretrain.pth"
    torch.save({"base_model": pcpeft.create_model(num_classes=3, **TINY_MODEL).state_dict()}, pretrained)
    tiny = [f"model.{k}={v}" for k, v in TINY_MODEL.items()]
    proc = subprocess.run(
        [sys.executable, "tools/train.py", "--config", "cfgs/finetune_folder.yaml", "--ckpts", str(pretrained),
         "--peft", "adapter_x", "--experiments", str(tmp_path / "exp"), "--no_progress", "--opts",
         f"dataset.root={pool}", "dataset.npoints=256", "dataset.mesh_points=1024", *tiny, "scheduler.epochs=6",
         "scheduler.warmup_epochs=0", "optimizer.lr=2e-3", "train.batch_size=4", "model.head_dropout=0.0",
         "augmentation.scale_translate=false"],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "exp" / "finetune_folder" / "default"
    results = json.loads((run / "results.json").read_text())
    losses = [epoch["train_loss"] for epoch in results["history"]]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    record = yaml.safe_load((run / "config.yaml").read_text())["run"]
    assert record["class_names"] == list(FOLDER_CLASSES) and record["ckpts_sha256"] == file_sha256(pretrained)
    split = json.loads((run / "split.json").read_text())
    assert split["layout"] == "seeded" and len(split["train"]) == 15 and len(split["test"]) == 3
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["num_classes"] == 3


def test_a_class_count_that_disagrees_with_the_folders_is_refused(tmp_path, pool):
    from pcpeft.engine.recipe.yaml_io import ConfigError
    from pcpeft.engine.training.finetune import RunOptions, train
    from tests.folder_data import folder_recipe

    config = folder_recipe(pool, epochs=1)
    config["model"]["num_classes"] = 5
    options = RunOptions(config_path="folder.yaml", experiments_root=str(tmp_path), progress=False)
    with pytest.raises(ConfigError, match=r"model.num_classes is 5 but .*scans has 3 class folders"):
        train(config, options)
    assert not (tmp_path / "folder" / "default" / "config.yaml").exists()
