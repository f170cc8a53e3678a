"""PointLoRA against an independent restatement of its official code (tests/references/pointlora.py), fed from an
official-layout file with every tensor non-zero; the official trainable counts; the training-mode BatchNorm
statistics; the partial merge; the other backbones; ONNX; the converter; the recipes."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import pcpeft
import pcpeft.peft.pointlora  # noqa: F401  (registers the method)
from pcpeft import get_peft_model
from pcpeft.peft import PeftError, PeftModel
from pcpeft.peft.official import official_key_map
from pcpeft.peft.pointlora import PointLoRAConfig, PointLoRALinear
from tests.references import pointlora as ref

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(num_classes=5, num_group=32, group_size=8, depth=3, trans_dim=48, encoder_dims=48, num_heads=6,
             drop_path_rate=0.0)
SPEC = {"method": "pointlora", "scale2_groups": 16, "scale2_group_size": 16, "top_k": 8, "scale2_top_k": 4}
TOLERANCE = 1e-4
#: the official optimiser's rule (``tools/builder.py``, ``part: pointlora``)
OFFICIAL_RULE = ("cls", "prompt", "first_conv", "pos_embed", "lora_")


def cloud(batch=2, n=256, seed=1):
    return torch.randn(batch, n, 3, generator=torch.Generator().manual_seed(seed))


def reference_model(seed=0):
    torch.manual_seed(seed)
    model = ref.RefPointLoRA(5, 32, 8, scale2=(16, 16), top_k=(8, 4), depth=3, dim=48)
    return ref.randomise_official(model, seed).eval()


def official_file(tmp_path, module_prefix=True, seed=0):
    reference = reference_model(seed)
    prefix = "module." if module_prefix else ""
    path = tmp_path / "pointlora-official.pth"
    torch.save({"base_model": {prefix + k: v for k, v in reference.state_dict().items()}, "epoch": 7,
                "metrics": {"acc": 88.0}, "best_metrics": {"acc": 88.5}}, path)
    return reference, path


def pcpeft_model(spec=SPEC, seed=5):
    torch.manual_seed(seed)
    return get_peft_model(pcpeft.create_model("point_mae", **SMALL), spec)


def loaded_model(tmp_path, spec=SPEC):
    reference, path = official_file(tmp_path)
    model = pcpeft_model(spec)
    report = pcpeft.load_checkpoint(model, path, strict=True)
    assert report.ok, report
    return reference, model.eval()


def score_gap(reference, x):
    """Smallest margin between the k-th and (k+1)-th score of either scale: a near-tie would make the hard
    selection (and so the comparison) depend on rounding."""
    gaps = []
    with torch.no_grad():
        for (count, size), k in (((32, 8), 8), ((16, 16), 4)):
            scores = reference.lora_mask_predictor(reference.encoder(ref.group(x, count, size)[0]))
            top = scores.sort(dim=1, descending=True).values
            gaps.append(float((top[:, k - 1] - top[:, k]).min()))
    return min(gaps)


# -- the official forward ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module_prefix", [True, False])
def test_official_file_loads_strictly_and_gives_the_official_logits(tmp_path, module_prefix):
    reference, path = official_file(tmp_path, module_prefix)
    state = reference.state_dict()
    assert all(bool((v != 0).any()) for v in state.values())  # every tensor exercised, lora_B included
    gates = [v for k, v in state.items() if k.endswith((".qkv.weight", ".proj.weight"))]
    assert len(gates) == 2 * 3 and all(float((g - 1).abs()) > 1e-3 for g in gates)
    model = pcpeft_model()
    report = pcpeft.load_checkpoint(model, path, strict=True)
    assert report.ok and report.layout == "pointlora_official" and len(report.loaded) == len(state)
    model.eval()
    hook = model.peft_modules["pointlora"]
    x = cloud()
    assert score_gap(reference, x) > 1e-4
    with torch.no_grad():
        for batch in (x, x[:1], x[1:]):
            expected, expected_loss = reference(batch)
            got = model(batch)
            assert (got - expected).abs().max() < TOLERANCE, (got - expected).abs().max()
            assert abs(float(hook.last_mask_loss - expected_loss)) < 1e-5
            assert float(model.aux_loss()) == pytest.approx(0.004 * float(expected_loss), abs=1e-7)
    assert expected.abs().max() > 0.1  # the logits are not trivially small
    back = model.official_state_dict()  # the converter's way back: the same 266-entry layout at full size
    assert list(back) != [] and set(back) == set(state)
    assert all(torch.equal(back[k], v) for k, v in state.items())


PERTURBATIONS = {
    "gates ignored": lambda m: [p.fill_(1.0) for n, p in m.named_parameters() if n.endswith(".gate")],
    "LoRA term dropped": lambda m: [p.zero_() for n, p in m.named_parameters() if n.endswith(".lora_B")],
    "prompt_pos_mlp dropped": lambda m: m.peft_modules["pointlora"].prompt_pos_mlp[2].weight.zero_(),
    "bottom-k selection": lambda m: m.peft_modules["pointlora"].lora_mask_predictor.fc2.weight.neg_(),
    "qkv MLP dropped": lambda m: m.peft_modules["pointlora"].prompt_qkv_mlp[2].weight.zero_(),
}


@pytest.mark.parametrize("change", sorted(PERTURBATIONS))
def test_each_part_of_the_method_shows_in_the_logits(tmp_path, change):
    """The comparison above can fail: each part of the official forward, changed, moves the logits."""
    reference, model = loaded_model(tmp_path)
    x = cloud()
    with torch.no_grad():
        PERTURBATIONS[change](model)
        assert (model(x) - reference(x)[0]).abs().max() > 1e-3


def test_the_predictor_only_ranks_a_monotone_shift_keeps_the_logits(tmp_path):
    """The scores pick tokens but do not weight them: shifting the predictor's logit changes the mask loss only."""
    reference, model = loaded_model(tmp_path)
    x = cloud()
    with torch.no_grad():
        before, loss_before = model(x), model.peft_modules["pointlora"].last_mask_loss
        model.peft_modules["pointlora"].lora_mask_predictor.fc2.bias.add_(0.7)
        after, loss_after = model(x), model.peft_modules["pointlora"].last_mask_loss
    assert torch.allclose(before, after, atol=1e-6) and abs(float(loss_before - loss_after)) > 1e-3


def test_training_mode_moves_the_batchnorm_statistics_as_the_official_three_encoder_calls(tmp_path):
    reference, model = loaded_model(tmp_path)
    x = cloud()
    reference.train()
    model.train()
    with torch.no_grad():
        reference(x)
        model(x)
    ours = model.official_state_dict()
    checked = [k for k in reference.state_dict() if k.startswith(("encoder.", "cls_head_finetune.1."))
               and ("running_" in k or "num_batches" in k)]  # the head's second BatchNorm follows a dropout
    assert len(checked) == 3 * 3
    for key in checked:
        assert torch.allclose(ours[key].float(), reference.state_dict()[key].float(), atol=1e-5, rtol=1e-5), key
    calls = []
    model.base_model.encoder.register_forward_hook(lambda *args: calls.append(1))
    model(x)
    assert len(calls) == 3
    once = pcpeft_model({**SPEC, "encode_scale1_again": False}).train()
    once.base_model.encoder.register_forward_hook(lambda *args: calls.append(2))
    once(x)
    assert calls.count(2) == 2


def test_mask_loss_is_the_auxiliary_loss_and_trains_the_predictor_alone():
    model = pcpeft_model({**SPEC, "mask_loss_weight": 0.5}).train()
    hook = model.peft_modules["pointlora"]
    assert hook.aux_loss() is None and float(model.aux_loss()) == 0.0
    logits = model(cloud())
    mask_loss = float(hook.last_mask_loss.detach())
    assert float(model.aux_loss().detach()) == pytest.approx(0.5 * mask_loss)
    assert -1.25 * math.log(2) - 1e-6 < mask_loss < 0  # negative entropies: >= -(1 + 0.25) ln 2
    F.cross_entropy(logits, torch.tensor([0, 1])).backward(retain_graph=True)
    assert all(p.grad is None for p in hook.lora_mask_predictor.parameters())  # top-k passes no gradient
    model.aux_loss().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in hook.lora_mask_predictor.parameters())


# -- counts and the trained set --------------------------------------------------------------------------------------
@pytest.mark.parametrize("classes, trained, total, undecayed",
                         [(15, 772_752, 22_513_960, 5_712), (40, 779_177, 22_520_385, 5_737)])
def test_trainable_counts_equal_the_official_optimiser(classes, trained, total, undecayed):
    with torch.device("meta"):
        model = get_peft_model(pcpeft.create_model("point_mae", num_classes=classes, num_group=128), "pointlora")
    assert model.trainable_parameters() == (trained, total)
    names = official_key_map(model)
    official_trained = {names[n] for n, p in model.named_parameters() if p.requires_grad}
    by_rule = {names[n] for n, _ in model.named_parameters() if any(s in names[n] for s in OFFICIAL_RULE)}
    assert official_trained == by_rule
    assert len(model.official_state_dict()) == 266
    from pcpeft.engine.training.optim import param_groups

    no_decay = param_groups(model, 0.05)[0]["params"]  # 1-D, biases, "token": lora_A/B and cls_pos decay
    assert sum(p.numel() for p in no_decay) == undecayed
    gates = [n for n, p in model.named_parameters() if n.endswith(".gate")]
    assert len(gates) == 24 and not any(p.requires_grad for n, p in model.named_parameters() if n in gates)
    assert "blocks.blocks.0.attn.qkv.weight" in model.official_state_dict()  # the gate's official name
    assert model.official_state_dict()["blocks.blocks.0.attn.qkv.weight"].shape == (1,)


# -- merge -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale_by_alpha", [False, True])
def test_merge_folds_the_lora_term_and_keeps_the_input_dependent_layers(tmp_path, scale_by_alpha):
    spec = {**SPEC, "scale_by_alpha": scale_by_alpha, "alpha": 16.0}
    reference, model = loaded_model(tmp_path, spec)
    x = cloud()
    qkv = model.base_model.blocks.blocks[0].attn.qkv
    weight = qkv.base.weight.clone()
    assert float(qkv.lora_B.detach().abs().min()) > 0
    with torch.no_grad():
        before = model(x)
        merged = model.merge_and_unload()
        after = merged.eval()(x)
    assert merged is model and isinstance(qkv, PointLoRALinear)  # the gated MLPs and the selection stay
    assert (before - after).abs().max() < 1e-5
    assert float(qkv.lora_B.detach().abs().max()) == 0 and not torch.equal(qkv.base.weight, weight)
    with torch.no_grad():
        official = (before - reference(x)[0]).abs().max()
    assert (official < TOLERANCE) != scale_by_alpha  # alpha/r = 2 applied is a deviation from the official model


def test_fully_mergeable_methods_still_return_the_plain_backbone():
    for method in ("lora", "ssf"):
        model = get_peft_model(pcpeft.create_model("point_mae", **SMALL), method)
        assert not isinstance(model.merge_and_unload(), PeftModel)
    with pytest.raises(PeftError, match="pointlora merges in part"):
        get_peft_model(pcpeft.create_model("point_mae", **SMALL), "adapter_x").merge_and_unload()


# -- other backbones -------------------------------------------------------------------------------------------------
TINY = {"num_classes": 5, "num_group": 16, "group_size": 8, "trans_dim": 48, "depth": 2, "num_heads": 4}
BACKBONES = {"point_bert": {}, "act": {"encoder_dims": 48}, "pointgpt_s": {"decoder_depth": 1},
             "pointgpt_b": {"decoder_depth": 1}, "pointgpt_l": {"decoder_depth": 1}}
TINY_SPEC = {"method": "pointlora", "scale2_groups": 8, "scale2_group_size": 16, "top_k": 4, "scale2_top_k": 2}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_runs_trains_and_round_trips_adapter_only_on_the_other_backbones(tmp_path, name):
    torch.manual_seed(0)
    model = get_peft_model(pcpeft.create_model(name, **TINY, **BACKBONES[name]), TINY_SPEC).train()
    x = cloud(n=128)
    (F.cross_entropy(model(x), torch.tensor([0, 1])) + model.aux_loss()).backward()
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    for part in ("lora_B", "prompt_mlp", "prompt_pos_mlp", "prompt_qkv_mlp", "prompt_proj_mlp", "lora_mask_predictor"):
        assert any(part in n and p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in trained.items()), part
    model.eval().save_pretrained(tmp_path / "adapter")
    torch.manual_seed(0)  # the same frozen backbone
    restored = PeftModel.from_pretrained(pcpeft.create_model(name, **TINY, **BACKBONES[name]), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.equal(model(x), restored.eval()(x))


def test_segmentation_model_drops_the_selected_tokens_before_propagation():
    seg = pcpeft.create_model("point_mae_partseg", num_parts=14, num_categories=6, num_group=16, group_size=8,
                              trans_dim=48, encoder_dims=48, depth=2, num_heads=4, fetch_layers=(0, 1))
    model = get_peft_model(seg, TINY_SPEC).train()
    x = cloud(n=128)
    out = model(x, torch.tensor([0, 4]))
    assert out.shape == (2, 128, 14)
    (F.nll_loss(out.reshape(-1, 14), torch.randint(0, 14, (256,))) + model.aux_loss()).backward()
    features, _ = model.base_model.forward_features(x)
    assert features.shape == (2, 16, 2 * 48)


def test_recon_and_the_vit_are_refused_with_a_reason():
    with pytest.raises(PeftError, match="ReCon.*point_mae"):
        get_peft_model(pcpeft.create_model("recon", **TINY, encoder_dims=48), TINY_SPEC)
    with pytest.raises(PeftError, match="group_divider"):
        get_peft_model(pcpeft.create_model("vit_tiny_patch16_224", num_classes=5, img_size=32, depth=2), TINY_SPEC)
    with pytest.raises(PeftError, match=">= 1"):
        get_peft_model(pcpeft.create_model("point_mae", **SMALL), {**SPEC, "top_k": 0})
    with pytest.raises(PeftError, match="conflict"):
        get_peft_model(pcpeft.create_model("point_mae", **SMALL), [SPEC, "lora"])


def test_counts_beyond_a_small_model_are_clamped():
    model = get_peft_model(pcpeft.create_model("point_mae", **{**TINY, "num_group": 8, "encoder_dims": 48}),
                           "pointlora").eval()
    with torch.no_grad():
        tokens = model.forward_features(cloud(n=48))
    assert tokens.shape[1] == 1 + 8 + 8 + 8  # all 8 patches selected, 48 points -> 48 scale-2 groups, 8 of them


# -- export, conversion, recipes --------------------------------------------------------------------------------------
def test_onnx_export_gives_the_pytorch_logits(tmp_path):
    pytest.importorskip("onnxruntime")
    from pcpeft.export.onnx_export import export_onnx, verify_onnx

    _, model = loaded_model(tmp_path)
    info = export_onnx(model, tmp_path / "pointlora.onnx", 256)
    assert info["methods"] == ["pointlora"] and info["merged"] is False
    assert verify_onnx(model, tmp_path / "pointlora.onnx", 256, batches=(1, 3)) < TOLERANCE


def _pretraining_file(tmp_path, reference):
    """The frozen weights the method started from, in Point-MAE's pre-training layout (qkv/proj un-injected)."""
    frozen = {}
    for key, value in reference.state_dict().items():
        if key.startswith(("encoder.", "pos_embed.", "norm.", "blocks.blocks.")) and "lora_" not in key \
                and not key.endswith((".qkv.weight", ".proj.weight")):
            frozen["MAE_encoder." + key.replace(".linear.", ".")] = value
    torch.save({"base_model": frozen}, tmp_path / "pretrain.pth")
    return tmp_path / "pretrain.pth"


def _convert(*args):
    """tools/convert_checkpoint.py in a fresh interpreter, with the method registered."""
    code = ("import runpy; import pcpeft.peft.pointlora; "
            "runpy.run_path('tools/convert_checkpoint.py', run_name='__main__')")
    subprocess.run([sys.executable, "-c", code, *args], check=True, cwd=ROOT, capture_output=True)


def test_converter_tool_round_trip_is_bit_exact(tmp_path):
    reference, path = official_file(tmp_path)
    pretrained = _pretraining_file(tmp_path, reference)
    options = f"--model_options={json.dumps(SMALL)}"
    _convert("to-pcpeft", str(path), "--out_dir", str(tmp_path / "adapter"), f"--peft={json.dumps(SPEC)}", options)
    _convert("to-official", str(tmp_path / "adapter"), "--out", str(tmp_path / "back.pth"), f"--ckpts={pretrained}",
             options)
    original, back = torch.load(path), torch.load(tmp_path / "back.pth")
    assert list(back["base_model"]) == list(original["base_model"])
    for key, value in original["base_model"].items():
        assert back["base_model"][key].dtype == value.dtype and torch.equal(back["base_model"][key], value), key
    assert (back["epoch"], back["metrics"]) == (original["epoch"], original["metrics"])
    backbone = pcpeft.create_model("point_mae", **SMALL)
    pcpeft.load_checkpoint(backbone, pretrained)
    restored = PeftModel.from_pretrained(backbone, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert (restored(cloud()) - reference(cloud())[0]).abs().max() < TOLERANCE


def test_recipes_validate_and_carry_the_official_settings():
    from pcpeft.engine.recipe.schema import validate_recipe
    from pcpeft.engine.recipe.yaml_io import load_config
    from pcpeft.peft import config_from_dict

    for split in ("scan_hardest", "scan_objbg", "scan_objonly", "modelnet"):
        path = ROOT / "cfgs" / "methods" / f"pointlora_{split}.yaml"
        head = " ".join(path.read_text().splitlines()[:2])
        assert head.startswith("#") and "official" in head and "cfgs/finetune_scan_hardest_pointlora.yaml" in head
        if split != "scan_hardest":
            assert "ships only" in head
        settings = validate_recipe(load_config(path), str(path))
        config = config_from_dict(settings.peft)
        assert isinstance(config, PointLoRAConfig) and config == PointLoRAConfig()
        assert settings.model["drop_path_rate"] == 0.3 and settings.train.grad_clip == 10.0
        assert settings.optimizer.lr == 5e-4 and settings.optimizer.weight_decay == 0.05
        assert (settings.scheduler.epochs, settings.scheduler.warmup_epochs, settings.train.batch_size) == (300, 10, 32)
        assert settings.augmentation.scale_translate and not settings.augmentation.rotate
        assert settings.train.aux_loss_weight == 1.0  # the 0.004 is the method's own mask_loss_weight
