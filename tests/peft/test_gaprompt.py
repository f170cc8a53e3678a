"""GAPrompt against the independent restatement of its official forward (tests/references/gaprompt.py), fed from an
official-layout file; the batch dependence of the official propagation index and its corrected gather; the
official trainable counts; the other backbones, adapter files, the converter and the ONNX refusal."""
import pytest
import torch
import torch.nn.functional as F

import pcpeft
import pcpeft.peft.gaprompt  # noqa: F401  (registers the method)
from pcpeft import get_peft_model
from pcpeft.peft import PeftModel
from pcpeft.peft.base import PeftError
from tests.references import gaprompt as ref

CLASSES, GROUPS, SIZE, DIM, DEPTH = 5, 32, 8, 48, 8
SMALL = dict(num_classes=CLASSES, num_group=GROUPS, group_size=SIZE, depth=DEPTH, trans_dim=DIM, encoder_dims=DIM,
             num_heads=6, drop_path_rate=0.1, fps_backend="torch")
#: name -> (reference options, pcpeft options): the hardest config and OBJ_BG's (10 points, before attention)
CONFIGS = {
    "hardest": (dict(prompt_points=5, perturbation=0.8, side="after"),
                dict(prompt_points=5, perturbation=0.8, propagation="after")),
    "objbg": (dict(prompt_points=10, perturbation=0.2, side="before"),
              dict(prompt_points=10, perturbation=0.2, propagation="before")),
}
NEIGHBOURS = 8  # ShiftNet's interpolation neighbours scaled down with the groups, so the nearest are chosen


def cloud(batch=2, n=256, seed=1):
    """A thick shell (radius 0.6 to 1) with one point inside the near-origin radius, which FPS would pick early
    without the CUDA kernel's rule (as it would the prompt points near the origin)."""
    gen = torch.Generator().manual_seed(seed)
    points = F.normalize(torch.randn(batch, n, 3, generator=gen), dim=-1) * (0.6 + 0.4 * torch.rand(batch, n, 1,
                                                                                                     generator=gen))
    points[:, 7] = 0.01
    return points


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every tensor non-zero (BatchNorm statistics, counters, unused scalers and adapter.scale included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.fill_(3)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif tensor.dim() == 1 and name.endswith("weight"):  # LayerNorm / BatchNorm gains
                tensor.copy_(1 + torch.randn(tensor.shape, generator=gen) * 0.1)
            else:
                fan_in = tensor.shape[1] if tensor.dim() > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=gen) / fan_in ** 0.5)
        points = model.point_prompt.points
        points.copy_(torch.randn(points.shape, generator=gen) * 0.1)
        points[0, 0] = torch.tensor([0.002, -0.001, 0.003])  # x 5 inside the near-origin radius
    assert all(bool(t.ne(0).all()) for t in model.state_dict().values())
    return model


def official_file(tmp_path, name="hardest", corrected=False, seed=0):
    torch.manual_seed(seed)
    reference = ref.GAPromptReference(CLASSES, GROUPS, SIZE, dim=DIM, depth=DEPTH, prompt_depth=6,
                                      neighbours=NEIGHBOURS, corrected=corrected, **CONFIGS[name][0])
    randomise(reference, seed).eval()
    path = tmp_path / f"gaprompt-{name}.pth"
    torch.save({"base_model": {f"module.{k}": v for k, v in reference.state_dict().items()}, "epoch": 7,
                "metrics": {"acc": 90.0}, "best_metrics": {"acc": 90.0}}, path)
    return reference, path


def spec(name="hardest", **extra):
    return {"method": "gaprompt", "interpolation_neighbours": NEIGHBOURS, **CONFIGS[name][1], **extra}


def pcpeft_model(name="hardest", backbone="point_mae", seed=5, **extra):
    torch.manual_seed(seed)
    return get_peft_model(pcpeft.create_model(backbone, **SMALL), spec(name, **extra))


def max_diff(a, b):
    return float((a - b).abs().max())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_official_file_loads_strictly_and_gives_the_official_logits(tmp_path, name):
    reference, path = official_file(tmp_path, name)
    model = pcpeft_model(name)
    report = pcpeft.load_checkpoint(model, path, strict=True)
    assert report.ok and report.layout == "gaprompt_official" and not report.expected_absent
    assert len(report.loaded) == len(reference.state_dict())
    model.eval()
    x = cloud()
    with torch.no_grad():
        expected, got = reference(x), model(x)
        assert max_diff(got, expected) < 1e-4 and expected.abs().max() > 0.1
        for i in range(len(x)):  # each cloud alone, against the reference on that cloud alone
            assert max_diff(model(x[i:i + 1]), reference(x[i:i + 1])) < 1e-4


def test_official_state_dict_writes_the_official_layout_back(tmp_path):
    reference, path = official_file(tmp_path)
    model = pcpeft_model()
    pcpeft.load_checkpoint(model, path, strict=True)
    back, original = model.official_state_dict(), reference.state_dict()
    assert set(back) == set(original)
    assert all(torch.equal(back[k], v) for k, v in original.items())


def test_the_official_index_quirk_makes_logits_batch_dependent_and_per_sample_does_not(tmp_path):
    _, path = official_file(tmp_path)
    x = cloud(batch=3, seed=2)
    for mode in ("official", "per_sample"):
        model = pcpeft_model(propagation_index=mode)
        pcpeft.load_checkpoint(model, path, strict=True)
        with torch.no_grad():
            batch = model.eval()(x)
            alone = torch.cat([model(x[i:i + 1]) for i in range(3)])
        assert max_diff(batch[0], alone[0]) < 1e-5  # sample 0 reads only its own rows either way
        if mode == "official":  # later samples read rows of earlier ones
            assert min(max_diff(batch[i], alone[i]) for i in (1, 2)) > 1e-2
        else:
            assert max_diff(batch, alone) < 1e-5


def test_the_per_sample_gather_equals_the_corrected_restatement(tmp_path):
    reference, path = official_file(tmp_path, corrected=True)
    model = pcpeft_model(propagation_index="per_sample")
    pcpeft.load_checkpoint(model, path, strict=True)
    x = cloud()
    with torch.no_grad():
        assert max_diff(model.eval()(x), reference(x)) < 1e-4


def test_near_origin_points_are_never_centres():
    sphere = F.normalize(torch.randn(1, 256, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    found = {}
    for exclude in (True, False):
        model = pcpeft_model(exclude_near_origin=exclude).eval()
        with torch.no_grad():
            model.peft_modules["gaprompt"].point_prompt.points.zero_()  # five prompt points at the origin
        grouper = model.base_model.group_divider.base
        handle = grouper.register_forward_hook(lambda module, args, out: found.update({exclude: out[1]}))
        with torch.no_grad():
            model(sphere)
        handle.remove()
    assert found[True].square().sum(-1).gt(1e-3).all()
    assert found[False].square().sum(-1).le(1e-3).any()  # without the rule the origin is a far point here


ROWS = {  # (num_classes, num_group, options) -> (trainable, total), the official runner's counts
    "hardest, 15 classes": (15, 128, {}, 628_147, 22_453_195),
    "hardest config, 40 classes": (40, 128, {}, 634_572, 22_459_620),
    "modelnet": (40, 64, {"perturbation": 0.05}, 630_476, 22_455_524),
    "objbg / objonly": (15, 128, {"prompt_points": 10, "perturbation": 0.2, "propagation": "before"},
                        628_162, 22_453_210),
}


@pytest.mark.parametrize("row", sorted(ROWS))
def test_trainable_counts_equal_the_official_rule(row):
    classes, groups, options, trainable, total = ROWS[row]
    with torch.device("meta"):
        model = get_peft_model(pcpeft.create_model("point_mae", num_classes=classes, num_group=groups),
                               {"method": "gaprompt", **options})
    assert model.trainable_parameters() == (trainable, total)
    official = model.official_state_dict()
    assert len(official) == 446
    rule = ("point_prompt", "shift_net", "shape_feature_mlp", "adapter", "cls_pos", "cls_token", "cls_head_",
            "prompt_embeddings", "prompt_cor", "out_transform")
    by_rule = sum(v.numel() for k, v in official.items() if any(r in k for r in rule) and v.is_floating_point()
                  and "running" not in k)
    assert by_rule == trainable
    assert model.base_model.cls_head_finetune[0].in_features == 3 * 384
    assert {m.p for m in model.base_model.cls_head_finetune if isinstance(m, torch.nn.Dropout)} == {0.6}


def test_converter_round_trip_is_bit_exact(tmp_path):
    from pcpeft.peft.convert import adapter_to_official, official_to_adapter

    reference, path = official_file(tmp_path)
    frozen = {f"MAE_encoder.{k}": v for k, v in reference.state_dict().items()
              if k.startswith(("encoder.", "pos_embed.", "norm.")) or (k.startswith("blocks.blocks.") and any(
                  f".{part}." in k for part in ("norm1", "norm2", "attn", "mlp")))}
    torch.save({"base_model": frozen}, tmp_path / "pretrain.pth")
    official_to_adapter(path, tmp_path / "adapter", spec(), model_options=SMALL)
    adapter_to_official(tmp_path / "adapter", tmp_path / "back.pth", tmp_path / "pretrain.pth", model_options=SMALL)
    original, back = torch.load(path)["base_model"], torch.load(tmp_path / "back.pth")["base_model"]
    assert list(back) == list(original)
    assert all(torch.equal(back[k], v) for k, v in original.items())


BACKBONES = ["point_bert", "act", "recon", "pointgpt_s", "pointgpt_b", "pointgpt_l"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_other_backbones_train_and_round_trip_through_adapter_files(tmp_path, backbone):
    options = dict(num_classes=CLASSES, num_group=16, group_size=8, depth=2, trans_dim=48, num_heads=6)
    if backbone.startswith("point_") or backbone in ("act", "recon"):
        options["encoder_dims"] = 32 if backbone == "point_bert" else 48
    torch.manual_seed(0)
    model = get_peft_model(pcpeft.create_model(backbone, **options), spec(prompt_depth=1)).train()
    x = cloud(batch=2, n=128)
    loss = F.cross_entropy(model(x), torch.tensor([0, 1])) + model.aux_loss()
    loss.backward()
    method = model.peft_modules["gaprompt"]
    head_width = {"recon": 5, "pointgpt_s": 3, "pointgpt_b": 3, "pointgpt_l": 3}.get(backbone, 3) * 48
    assert model.base_model.cls_head_finetune[0].in_features == head_width  # global tokens, max, s
    layer = method.layers[0]  # (the prompt points get a gradient only where one is a neighbour of a centre)
    for part in (method.shift_net, method.shape_feature_mlp, layer.adapter, layer.out_transform):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), part
    assert layer.prompt_embeddings.grad.abs().sum() > 0 and method.prompt_cor.grad.abs().sum() > 0
    model.eval().save_pretrained(tmp_path / "adapter")
    torch.manual_seed(0)  # the same frozen backbone
    restored = PeftModel.from_pretrained(pcpeft.create_model(backbone, **options), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))


def test_backbones_without_a_point_grouper_or_a_head_are_refused():
    with pytest.raises(PeftError, match="point backbones only"):
        get_peft_model(pcpeft.create_model("vit_tiny_patch16_224", num_classes=5, img_size=64, depth=2), "gaprompt")
    for bad in ({"propagation": "middle"}, {"propagation_index": "mixed"}):
        with pytest.raises(PeftError, match="must be one of"):
            get_peft_model(pcpeft.create_model("point_mae", **SMALL), {"method": "gaprompt", **bad})


def test_onnx_export_is_refused_naming_the_method(tmp_path):
    from pcpeft.export.deploy import ExportError
    from pcpeft.export.onnx_export import export_onnx, onnx_unsupported_reason

    model = pcpeft_model().eval()
    assert "gaprompt" in onnx_unsupported_reason(model).lower()
    with pytest.raises(ExportError, match="(?i)gaprompt"):
        export_onnx(model, tmp_path / "model.onnx", npoints=256)


RECIPES = {"scan_hardest": (628_147, {"prompt_points": 5, "perturbation": 0.8, "propagation": "after"}),
           "scan_objbg": (628_162, {"prompt_points": 10, "perturbation": 0.2, "propagation": "before"}),
           "scan_objonly": (628_162, {"prompt_points": 10, "perturbation": 0.1, "propagation": "after"}),
           "modelnet": (630_476, {"prompt_points": 5, "perturbation": 0.05, "propagation": "after"})}


@pytest.mark.parametrize("split", sorted(RECIPES))
def test_recipes_hold_the_official_settings(split):
    from pathlib import Path

    from pcpeft.engine.recipe.schema import validate_recipe
    from pcpeft.engine.recipe.yaml_io import load_config

    path = Path(__file__).resolve().parents[2] / "cfgs" / "methods" / f"gaprompt_{split}.yaml"
    config = load_config(path)
    settings = validate_recipe(config, str(path))
    trainable, options = RECIPES[split]
    assert {k: settings.peft[k] for k in options} == options and settings.peft["method"] == "gaprompt"
    assert settings.test.batch_size == 64 and settings.augmentation.rotate and not settings.augmentation.scale_translate
    assert settings.augmentation.rotate_per == "batch"
    assert settings.scheduler.epochs == (400 if split == "modelnet" else 300)
    model = dict(config["model"])
    with torch.device("meta"):
        net = get_peft_model(pcpeft.create_model(model.pop("name"), **model), settings.peft)
    assert net.trainable_parameters()[0] == trainable
