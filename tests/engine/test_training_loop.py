"""The one training loop (pcpeft.engine.training.loop) under fine-tuning and pre-training: the schedule's every key
holds in pre-training too, and the package holds a single epoch loop."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from pcpeft.engine.recipe.schema import validate_recipe
from pcpeft.engine.training.pretrain import pretrain, pretrain_model

ROOT = Path(__file__).resolve().parents[2]


def tiny_pretrain_config(root: Path, epochs: int, cosine_epochs: int | None) -> dict:
    scheduler = {"epochs": epochs, "warmup_epochs": 0, "min_lr": 1e-5}
    if cosine_epochs is not None:
        scheduler["cosine_epochs"] = cosine_epochs
    return {"model": dict(name="point_mae", trans_dim=32, encoder_dims=32, depth=1, num_heads=2, num_group=8,
                          group_size=8),
            "dataset": {"name": "SyntheticDemo", "root": str(root), "npoints": 128, "train_per_class": 2,
                        "test_per_class": 1},
            "pretrain": {"mask_ratio": 0.5, "decoder_depth": 1},
            "optimizer": {"lr": 1e-3, "weight_decay": 0.05}, "scheduler": scheduler,
            "train": {"batch_size": 8, "num_workers": 0}}


@pytest.mark.parametrize("cosine_epochs", [None, 1])
def test_pretraining_honours_cosine_epochs(tmp_path, cosine_epochs):
    config = tiny_pretrain_config(tmp_path / "data", 3, cosine_epochs)
    path = pretrain(config, tmp_path / "out", seed=0, progress=False)
    lr = torch.load(path, weights_only=True)["optimizer"]["param_groups"][0]["lr"]
    if cosine_epochs is None:
        assert lr > 1e-5  # the cosine spans all three epochs
    else:
        assert lr == pytest.approx(1e-5)  # after the one cosine epoch, the floor


def test_pretraining_builds_its_model_through_the_registry(tmp_path):
    settings = validate_recipe(tiny_pretrain_config(tmp_path, 1, None), "tiny", task="pretrain")
    model = pretrain_model(settings)
    assert type(model).__name__ == "PointMAEPretrainModel"
    assert model.mask_token.shape[-1] == 32 and model.mask_ratio == 0.5 and model.group_size == 8


def test_one_epoch_loop_in_the_package():
    loops = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "pcpeft").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"for epoch in range", line)]
    assert loops == ["pcpeft/engine/training/loop.py:" + loops[0].split(":")[1]] and len(loops) == 1, loops
