import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pcpeft.datasets import DatasetError
from pcpeft.datasets.images import Digits, image_folder, vtab_list
from pcpeft.engine.training.finetune import RunOptions, train

ROOT = Path(__file__).resolve().parents[2]


def write_png(path, value, size=(20, 12)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, dtype=np.uint8)).save(path)


def test_image_folder_and_vtab_lists(tmp_path):
    for cls, value in (("cat", 0), ("dog", 255)):
        for i in range(2):
            write_png(tmp_path / "folder" / cls / f"{i}.png", value)
    ds = image_folder(tmp_path / "folder", 16)
    assert ds.classes == ("cat", "dog") and len(ds) == 4
    image, label = ds[3]
    assert image.shape == (3, 16, 16) and label == 1
    torch.testing.assert_close(image[0], torch.full((16, 16), (1 - 0.485) / 0.229))
    (tmp_path / "vtab").mkdir()
    write_png(tmp_path / "vtab/images/a.jpg", 128)
    (tmp_path / "vtab/train800val200.txt").write_text("images/a.jpg 3\nimages/a.jpg 0\n")
    v = vtab_list(tmp_path / "vtab", "train800val200.txt", 8, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(v) == 2 and v[0][1] == 3 and v.num_classes == 4 and v[0][0].shape == (3, 8, 8)
    (tmp_path / "vtab/test.txt").write_text("images/a.jpg\n")
    with pytest.raises(DatasetError, match=r"test.txt:1: expected 'path label'"):
        vtab_list(tmp_path / "vtab", "test.txt", 8)
    with pytest.raises(DatasetError, match="missing"):
        vtab_list(tmp_path / "vtab", "val.txt", 8)
    (tmp_path / "vtab/bad.txt").write_text("notes.txt 0\n")
    (tmp_path / "vtab/notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match="notes.txt: not a readable image"):
        vtab_list(tmp_path / "vtab", "bad.txt", 8)[0]


def test_digits_default_is_real_bundled_data_with_a_fixed_split():
    train, test = Digits("train", 32), Digits("test", 32)
    assert len(train) + len(test) == 1797 and len(test) == 360
    assert train[0][0].shape == (3, 32, 32) and set(train.labels.tolist()) == set(range(10))
    assert torch.equal(Digits("test", 32).images, test.images)


def test_short_vit_run_on_digits_beats_chance_clearly(tmp_path):
    config = {"model": {"name": "vit_tiny_patch16_224", "num_classes": 10, "img_size": 32, "patch_size": 8,
                        "depth": 2, "drop_path_rate": 0.0},
              "dataset": {"name": "Digits", "img_size": 32}, "optimizer": {"lr": 1e-3, "weight_decay": 0.05},
              "scheduler": {"epochs": 6, "warmup_epochs": 1}, "train": {"batch_size": 64, "num_workers": 0}}
    # lr 2e-3 without warm-up over 4 epochs left seed 2 at chance (11.4%): the old settings passed by luck of the
    # seed, and failed under torch 2.11's numerics. These reached 72.2-80.3% over seeds 0-4 (measured, torch 2.13)
    # and 68.3-78.6% (torch 2.11, CPU)
    results = train(config, RunOptions(config_path="digits.yaml", peft="full", experiments_root=str(tmp_path),
                                       progress=False))
    assert results["modality"] == "images" and results["npoints"] is None
    assert results["last"]["overall_acc"] > 40, results["last"]["overall_acc"]  # chance is 10%; margin >= 32 points


def test_compare_modalities_tool_writes_its_table(tmp_path):
    points = ["dataset.name=SyntheticDemo", f"dataset.root={tmp_path / 'demo'}", "dataset.npoints=256",
              "dataset.train_per_class=2", "dataset.test_per_class=1", "model.num_classes=12", "model.num_group=16",
              "model.group_size=8", "model.trans_dim=64", "model.encoder_dims=64", "model.depth=1",
              "model.num_heads=2", "scheduler.epochs=1", "train.num_workers=0", "train.batch_size=8"]
    images = ["model.depth=1", "model.img_size=32", "dataset.img_size=32", "model.patch_size=8", "scheduler.epochs=1"]
    out = subprocess.run([sys.executable, str(ROOT / "tools/compare_modalities.py"), "--methods", "linear", "ssf",
                          "--out_dir", str(tmp_path / "cmp"), "--points_opts", *points, "--images_opts", *images],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    table = (tmp_path / "cmp/comparison.md").read_text()
    assert "| ssf |" in table and "| linear |" in table and "SYNTHETIC" in table
    assert (tmp_path / "cmp/comparison.json").is_file()
