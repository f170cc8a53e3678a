"""The default modality comparison: the generated pre-training images, the shipped ViT backbone and a tiny run of
the default starting both sides from the shipped backbones."""
import hashlib
import json
from dataclasses import replace

import pytest
import torch
import yaml

from pcpeft import load_checkpoint
from pcpeft.datasets.generated_images import GeneratedImages, class_glyph, generate
from pcpeft.engine.data import build_dataset
from pcpeft.engine.recipe.schema import validate_recipe
from pcpeft.engine.recipe.shipped import resolve_recipe
from pcpeft.engine.recipe.yaml_io import ConfigError, load_config
from pcpeft.engine.runs.loading import file_sha256
from pcpeft.engine.training.model_setup import build_model, create_backbone
from pcpeft.experiments.modalities import (
    IMAGES_BACKBONE,
    IMAGES_BACKBONE_RECORD,
    POINTS_BACKBONE,
    default_comparison,
    run_comparison,
)

SMALL = dict(img_size=16, num_classes=5, train_per_class=3, test_per_class=2, generator_seed=3)
#: sha256 of the first two training samples of each class of cfgs/images/pretrain_vit_generated.yaml's set
#: (float32 pixels): a change of the generator changes the data the shipped ViT's record says it was trained on
PRETRAINING_PIXELS_SHA256 = "41a0ddf67c87878d662d67b56170aa93b42bfe168f4fe4c9cfa241ed45fd2ed5"


def test_generated_images_are_deterministic_and_have_the_classes_they_say():
    train, again = GeneratedImages("train", **SMALL), GeneratedImages("train", **SMALL)
    assert torch.equal(train.raw, again.raw) and torch.equal(train.labels, again.labels)
    assert train.classes == ("glyph000", "glyph001", "glyph002", "glyph003", "glyph004") and train.num_classes == 5
    assert torch.bincount(train.labels).tolist() == [3] * 5
    image, label = train[4]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 1
    assert float(train.raw.min()) >= 0 and float(train.raw.max()) <= 1 and float(train.raw.mean()) > 0.05
    test = GeneratedImages("test", **SMALL)
    assert len(test) == 10 and not torch.equal(test.raw[:2], train.raw[:2])  # another stream of the same glyphs
    other = GeneratedImages("train", **{**SMALL, "generator_seed": 4})
    assert not torch.equal(other.raw, train.raw)
    assert [s.tolist() for s in class_glyph(3, 2)] == [s.tolist() for s in class_glyph(3, 2)]


def test_the_shipped_vits_pre_training_images_are_the_ones_it_was_trained_on():
    images, labels = generate(100, 2, "train", 0, 8)  # the recipe's classes and seed, 2 samples of each
    assert hashlib.sha256(images.tobytes()).hexdigest() == PRETRAINING_PIXELS_SHA256
    assert labels.tolist() == [c for c in range(100) for _ in range(2)]


def test_generated_images_recipe_builds_its_data_set_and_refuses_unknown_keys():
    config = load_config(resolve_recipe("images/pretrain_vit_generated"))
    spec = validate_recipe(config, "pretrain_vit_generated").dataset.model_dump()
    assert spec["num_classes"] == config["model"]["num_classes"] == 100
    data = build_dataset({**spec, **SMALL}, "test")
    assert isinstance(data, GeneratedImages) and len(data) == 10 and data[0][0].shape == (3, 16, 16)
    with pytest.raises(ConfigError, match="dataset.train_per_clas"):
        validate_recipe({**config, "dataset": {**config["dataset"], "train_per_clas": 3}}, "recipe.yaml")


def test_vit_asset_sha256_equals_its_record():
    record = json.loads(IMAGES_BACKBONE_RECORD.read_text())
    assert record["file"] == IMAGES_BACKBONE.name and file_sha256(IMAGES_BACKBONE) == record["sha256"]
    for key in ("what", "command", "asset_command", "seed", "epochs", "wall_time_seconds", "machine"):
        assert record[key] not in (None, ""), key
    assert "GeneratedImages" in record["what"] and "pretrain_vit_generated" in record["command"]
    assert IMAGES_BACKBONE.stat().st_size < 8 * 2 ** 20


def test_vit_asset_loads_into_the_compare_2d_model_with_every_backbone_key(tmp_path):
    config = default_comparison().images.config("linear", tmp_path)
    backbone = create_backbone(validate_recipe(config, "images"))
    report = load_checkpoint(backbone, IMAGES_BACKBONE)
    assert report.ok and not report.missing and not report.unexpected and not report.shape_mismatches
    assert report.loaded == sorted(k for k in backbone.state_dict() if not k.startswith("head."))
    assert sorted(sum(report.expected_absent.values(), [])) == ["head.bias", "head.weight"]
    model, loaded = build_model(config, str(IMAGES_BACKBONE), "linear")  # the --ckpts path
    assert loaded.ok and model.trainable_parameters()[0] == 192 * 10 + 10


def test_tiny_default_comparison_starts_both_sides_from_the_shipped_backbones(tmp_path):
    settings = default_comparison(methods=("linear",))
    tiny_points = ("dataset.train_per_class=4", "dataset.test_per_class=2", "scheduler.epochs=1",
                   "scheduler.warmup_epochs=0", "train.batch_size=8")
    settings = replace(settings, points=replace(settings.points, overrides=settings.points.overrides + tiny_points),
                       images=replace(settings.images, overrides=settings.images.overrides + (
                           "scheduler.epochs=1", "scheduler.warmup_epochs=0")))
    summary = run_comparison(settings, tmp_path)
    sides = summary["sides"]
    assert sides["points"]["backbone"] == POINTS_BACKBONE.name and sides["images"]["backbone"] == IMAGES_BACKBONE.name
    assert sides["points"]["shipped_backbone"] and sides["images"]["shipped_backbone"]
    row = summary["rows"][0]
    for modality, shipped in (("points", POINTS_BACKBONE), ("images", IMAGES_BACKBONE)):
        cell = row[modality]
        assert cell["pretrained"] and cell["backbone"] == shipped.name and cell["best_chosen_on"] == "validation"
        run = yaml.safe_load(next((tmp_path / modality).rglob("linear/config.yaml")).read_text())["run"]
        assert run["ckpts_sha256"] == json.loads(shipped.with_suffix(".json").read_text())["sha256"]
    header = summary["table"].splitlines()[0]
    assert header.startswith("Both sides start from the shipped pre-trained backbones") and "SYNTHETIC" in header
    assert "validation split" in summary["table"].splitlines()[1]
    assert json.loads((tmp_path / "comparison.json").read_text())["sides"] == json.loads(json.dumps(sides))


def test_command_line_changes_replace_a_default_side_whole():
    points = default_comparison().points
    assert points.with_overrides() is points and points.ckpts == str(POINTS_BACKBONE)
    changed = points.with_overrides(opts=["scheduler.epochs=1"])
    assert changed.recipe == points.recipe and changed.overrides == ("scheduler.epochs=1",)
    assert changed.ckpts is None and changed.method_overrides == {} and changed.data_folder is None
    assert points.with_overrides("finetune_folder", "backbone.pth").ckpts == "backbone.pth"
