"""The embedded synthetic set is regenerated whenever its generator settings change."""
import json

import h5py

from pcpeft.datasets.demo_shapes import SETTINGS_FILE, ensure_demo_dataset, generator_settings, write_demo_dataset
from pcpeft.engine.data import build_dataset


def _train_count(root):
    with h5py.File(root / "main_split/training_objectdataset.h5") as f:
        return len(f["label"])


def test_a_changed_generator_setting_regenerates_the_set(tmp_path):
    write_demo_dataset(tmp_path, train_per_class=2, test_per_class=1)
    record = json.loads((tmp_path / SETTINGS_FILE).read_text())
    assert record == generator_settings(2, 1, 0)
    mtime = (tmp_path / "main_split/training_objectdataset.h5").stat().st_mtime_ns
    ensure_demo_dataset(tmp_path)  # no setting named: the existing set is used as it is
    ensure_demo_dataset(tmp_path, 2, 1, 0)  # the same settings: not regenerated
    assert (tmp_path / "main_split/training_objectdataset.h5").stat().st_mtime_ns == mtime
    spec = {"name": "SyntheticDemo", "root": str(tmp_path), "train_per_class": 3, "test_per_class": 1}
    assert len(build_dataset(spec, "train")) == 36 and _train_count(tmp_path) == 36  # 3 per class now
    before = (tmp_path / "main_split/test_objectdataset.h5").read_bytes()
    build_dataset({**spec, "generator_seed": 5}, "test")  # another seed: new clouds
    assert (tmp_path / "main_split/test_objectdataset.h5").read_bytes() != before


def test_a_set_without_a_settings_record_or_from_another_generator_is_regenerated(tmp_path):
    write_demo_dataset(tmp_path, train_per_class=2, test_per_class=1)
    record = json.loads((tmp_path / SETTINGS_FILE).read_text())
    record["generator_sha256"] = "0" * 64
    record["settings_sha256"] = "stale"
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(record))
    ensure_demo_dataset(tmp_path, 2, 1, 0)
    assert json.loads((tmp_path / SETTINGS_FILE).read_text()) == generator_settings(2, 1, 0)
    (tmp_path / SETTINGS_FILE).unlink()
    ensure_demo_dataset(tmp_path, 1, 1, 0)
    assert _train_count(tmp_path) == 12


def test_the_validation_split_is_disjoint_from_the_rest_of_training_and_from_test(tmp_path):
    import numpy as np

    from pcpeft.engine.data.holdout import split_train_val, stratified_holdout

    write_demo_dataset(tmp_path, train_per_class=5, test_per_class=2)
    spec = {"name": "SyntheticDemo", "root": str(tmp_path)}
    train_set, test_set = build_dataset(spec, "train", seed=0), build_dataset(spec, "test")
    kept, held = stratified_holdout(train_set.labels, 0.2, seed=3)
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == len(train_set)
    assert np.bincount(train_set.labels[held]).tolist() == [1] * 12  # stratified: one of five per class
    rest, val = split_train_val(train_set, 0.2, seed=3)
    assert sorted(rest.indices + val.indices) == list(range(len(train_set)))
    val_clouds = {train_set.points[i].tobytes() for i in val.indices}
    assert not val_clouds & {c.tobytes() for c in test_set.points}
    assert not val_clouds & {train_set.points[i].tobytes() for i in rest.indices}
    assert not val.dataset.shuffle_points and train_set.shuffle_points


def test_the_best_epoch_is_chosen_on_validation_when_there_is_one(tmp_path):
    from pcpeft.engine.training.finetune import RunOptions, train

    write_demo_dataset(tmp_path / "d", train_per_class=4, test_per_class=1)
    config = {"model": {"name": "point_mae", "num_classes": 12, "trans_dim": 32, "encoder_dims": 32, "depth": 1,
                        "num_heads": 2, "num_group": 8, "group_size": 8},
              "dataset": {"name": "SyntheticDemo", "root": str(tmp_path / "d"), "npoints": 128, "val_fraction": 0.25},
              "scheduler": {"epochs": 3, "warmup_epochs": 0}, "optimizer": {"lr": 2e-3},
              "train": {"batch_size": 8}}
    results = train(config, RunOptions(config_path="v.yaml", experiments_root=str(tmp_path), progress=False))
    history = results["history"]
    best = max(range(len(history)), key=lambda e: (history[e]["val_acc"], -e))
    assert results["best_chosen_on"] == "validation" and results["best"]["epoch"] == best
    assert results["best"]["overall_acc"] == history[best]["test_acc"]
