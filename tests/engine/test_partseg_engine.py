"""Part segmentation through the engine: recipes, the task object in the trainer, every PEFT method on the
segmentation model, test.py / visualize.py parts, and the synthetic parts recipe lowering the loss."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pcpeft
from pcpeft.datasets.demo_parts import write_parts_dataset
from pcpeft.engine.recipe.schema import validate_recipe
from pcpeft.engine.recipe.yaml_io import ConfigError, load_config
from pcpeft.engine.training.finetune import RunOptions, evaluate_run, load_for_test, train
from pcpeft.engine.training.tasks import PartSegAugment
from pcpeft.peft import PeftError, get_peft_model, list_methods
from pcpeft.peft.presets import PRESETS
from tests.references.backbones import one_thread  # noqa: F401  (autouse: tiny models on one thread)

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(trans_dim=32, depth=3, num_heads=2, num_group=16, group_size=8, fetch_layers=[0, 1, 2],
            drop_path_rate=0.0)


def tiny_seg_model(**overrides):
    return pcpeft.create_model("point_mae_partseg", num_parts=14, num_categories=6, **{**TINY, **overrides})


@pytest.fixture(scope="module")
def parts_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    write_parts_dataset(root, train_per_category=4, val_per_category=2, test_per_category=2, seed=0,
                        npoints_per_shape=256)
    return root


def seg_config(root, epochs=3, lr=3e-3):
    return {"task": "partseg",
            "model": {"name": "point_mae_partseg", "num_parts": 14, "num_categories": 6, **TINY},
            "dataset": {"name": "SyntheticParts", "root": str(root), "npoints": 256, "train_per_category": 4,
                        "val_per_category": 2, "test_per_category": 2},
            "optimizer": {"lr": lr, "weight_decay": 0.05},
            "scheduler": {"epochs": epochs, "warmup_epochs": 0},
            "train": {"batch_size": 8, "num_workers": 0}}


def run(config, tmp_path, name="run", **opts):
    options = RunOptions(config_path="seg.yaml", exp_name=name, experiments_root=str(tmp_path), progress=False,
                         **opts)
    return train(config, options), tmp_path / "seg" / name


# -- recipes ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe", sorted((ROOT / "cfgs" / "partseg").glob("*.yaml")), ids=lambda p: p.name)
def test_partseg_recipes_validate_and_build(recipe):
    settings = validate_recipe(load_config(recipe), str(recipe))
    assert settings.task == "partseg"
    model = pcpeft.create_model(settings.model_name, **settings.model_options)
    assert model.num_parts == settings.model.get("num_parts", 50)


def test_official_recipe_holds_the_official_hyper_parameters():
    config = load_config(ROOT / "cfgs/partseg/point_mae.yaml")
    assert config["optimizer"] == {"lr": 2e-4, "weight_decay": 0.05}
    assert config["scheduler"]["epochs"] == 300 and config["scheduler"]["cosine_epochs"] == 100
    assert config["train"]["batch_size"] == 16 and config["dataset"]["npoints"] == 2048
    assert config["dataset"]["train_split"] == "trainval"


def test_task_and_model_must_agree(parts_root):
    config = seg_config(parts_root)
    with pytest.raises(ConfigError, match="task: partseg"):
        validate_recipe({**config, "task": "classification"}, "bad.yaml")
    with pytest.raises(ConfigError, match="part-segmentation model"):
        validate_recipe({**config, "model": {"name": "point_mae", "num_classes": 6}}, "bad.yaml")
    with pytest.raises(ConfigError, match="part data set"):
        validate_recipe({**config, "dataset": {"name": "SyntheticDemo", "root": "x"}}, "bad.yaml")


def test_data_that_does_not_fit_the_model_is_refused(parts_root, tmp_path):
    config = seg_config(parts_root, epochs=1)
    config["model"]["num_categories"] = 16
    with pytest.raises(ConfigError, match="6 categories"):
        run(config, tmp_path)
    normals = seg_config(parts_root, epochs=1)
    normals["dataset"]["normal_channel"] = True
    with pytest.raises(ConfigError, match="xyz only"):
        run(normals, tmp_path, name="normals")


def test_augmentation_keeps_points_aligned():
    points = torch.rand(3, 50, 3)
    moved = PartSegAugment(torch.Generator().manual_seed(0))(points)
    for before, after in zip(points, moved):  # one scale and one shift per cloud: order and shape kept
        centred_before, centred_after = before - before.mean(0), after - after.mean(0)
        scale = float((centred_after * centred_before).sum() / (centred_before ** 2).sum())
        assert torch.allclose(centred_after, scale * centred_before, atol=1e-5)
        shift = after.mean(0) - scale * before.mean(0)
        assert 0.8 <= scale <= 1.25 and bool((shift.abs() <= 0.1 + 1e-6).all())


# -- every PEFT method on the segmentation model -------------------------------------------------------------------
#: methods whose own code refuses a segmentation model, naming why (both feed a classification head's input)
SEG_REFUSED = {"gaprompt", "most"}


@pytest.mark.parametrize("method", sorted(set(list_methods()) - {"prompt_generator"} | set(PRESETS)))
def test_every_method_runs_forward_and_backward(method):
    torch.manual_seed(0)
    if method in SEG_REFUSED:
        with pytest.raises(PeftError, match="head"):
            get_peft_model(tiny_seg_model(), method)
        return
    model = get_peft_model(tiny_seg_model(), method)
    points, categories = torch.rand(2, 128, 3) - 0.5, torch.tensor([0, 4])
    model.train()
    out = model(points, categories)
    assert out.shape == (2, 128, 14)
    (torch.nn.functional.nll_loss(out.reshape(-1, 14), torch.randint(0, 14, (256,))) + model.aux_loss()).backward()
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any(n.startswith("base_model.convs3.") for n in trained)  # the head trains with every method
    trainable, total = model.trainable_parameters()
    assert (trainable == total) == (method == "full")
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad and "convs" in n)


def test_prompt_tokens_never_reach_the_propagation():
    """VPT inserts prompts after position 0, PPT appends a copy of the patches: both are removed before the
    features are propagated, so the plain model's feature width and group count are kept."""
    for method in ("vpt", "ppt", "adapter_x", "idpt"):
        model = get_peft_model(tiny_seg_model(), method).eval()
        features, centres = model.base_model.forward_features(torch.rand(2, 128, 3))
        assert features.shape == (2, 16, 3 * 32) and centres.shape == (2, 16, 3)


def test_ssf_merges_into_the_segmentation_model():
    torch.manual_seed(0)
    model = get_peft_model(tiny_seg_model(), "ssf").eval()
    for name, param in model.named_parameters():
        if "ssf_" in name:
            param.data.normal_(1.0 if "scale" in name else 0.0, 0.1)
    points, categories = torch.rand(2, 128, 3), torch.tensor([1, 2])
    before = model(points, categories)
    merged = model.merge_and_unload().eval()
    assert torch.allclose(merged(points, categories), before, atol=1e-5)


# -- training, testing, pictures -----------------------------------------------------------------------------------
def test_synthetic_parts_recipe_lowers_the_loss_and_reports_the_official_metrics(parts_root, tmp_path):
    results, exp = run(seg_config(parts_root, epochs=4), tmp_path, peft="adapter_x")
    losses = [e["train_loss"] for e in results["history"]]
    assert losses[-1] < losses[0], losses
    assert results["task"] == "partseg" and results["best_chosen_on"] == "validation"
    for key in ("instance_miou", "class_miou", "per_category_iou", "val_instance_miou"):
        assert key in results["best"], key
    assert set(results["last"]["per_category_iou"]) == {"Bottle", "Chair", "Lamp", "Mug", "Stool", "Table"}
    assert "test_instance_miou" in results["history"][-1]
    assert json.loads((exp / "results.json").read_text())["best"]["epoch"] == results["best"]["epoch"]

    config = seg_config(parts_root)
    model = load_for_test(config, None, str(exp / "adapter-best"), torch.device("cpu"))
    again = evaluate_run(config, model, torch.device("cpu"), vote=False)
    assert again["instance_miou"] == pytest.approx(results["best"]["instance_miou"], abs=1e-9)
    with pytest.raises(ConfigError, match="one pass"):
        evaluate_run(config, model, torch.device("cpu"), vote=True)


def test_resume_of_a_segmentation_run_is_exact(parts_root, tmp_path):
    config = seg_config(parts_root, epochs=2)
    full, _ = run(config, tmp_path / "a", peft="ssf")
    run(config, tmp_path / "b", peft="ssf", stop_after_epochs=1)
    resumed, _ = run(config, tmp_path / "b", peft="ssf", resume=True)
    assert [e["train_loss"] for e in resumed["history"]] == [e["train_loss"] for e in full["history"]]


def test_visualize_parts_draws_predicted_and_true_parts(parts_root, tmp_path):
    import yaml

    recipe = tmp_path / "seg.yaml"
    recipe.write_text(yaml.safe_dump(seg_config(parts_root)))
    out = tmp_path / "parts.png"
    done = subprocess.run([sys.executable, str(ROOT / "tools/visualize.py"), "parts", "--config", str(recipe),
                           "--peft", "ssf", "--index", "1", "--renderer", "matplotlib", "--width", "400",
                           "--height", "200", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    from PIL import Image

    assert Image.open(out).size == (400, 200)
    bad = subprocess.run([sys.executable, str(ROOT / "tools/visualize.py"), "parts", "--config", str(recipe),
                          "--index", "99", "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--index 99" in bad.stderr and "Traceback" not in bad.stderr
