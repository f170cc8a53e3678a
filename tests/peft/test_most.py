"""MoST against the independent restatement of its official code (tests/references/most.py), fed from an
official-layout file; the official trainable counts and key layout at PointGPT-L's size; the batch term; the
zero-gradient fact of the official initialisation; other backbones, refusals, merge, ONNX and the converter."""
import importlib.util

import pytest
import torch
import torch.nn.functional as F

import pcpeft
import pcpeft.peft.most  # noqa: F401  (registers the method)
from pcpeft import get_peft_model
from pcpeft.models.layouts import pointgpt_key
from pcpeft.peft import PeftError, PeftModel
from pcpeft.peft.monarch import MonarchLinear
from pcpeft.peft.most import fused_layers
from tests.references import most as ref
from tests.references.backbones import one_thread  # noqa: F401  (autouse fixture)

TINY_L = dict(num_classes=5, num_group=16, group_size=8, trans_dim=64, depth=6, num_heads=4, decoder_depth=2)
TINY = dict(num_classes=5, num_group=16, group_size=8, trans_dim=48, depth=2, num_heads=4)




def cloud(batch=2, n=256, seed=1):
    return torch.randn(batch, n, 3, generator=torch.Generator().manual_seed(seed))


def reference(seed=0):
    torch.manual_seed(seed)
    return ref.randomise(ref.RefMoST(5, 16, 8, dim=64, depth=6, heads=4, decoder_depth=2, nblocks=8), seed).eval()


def official_file(tmp_path, model, name="most-official.pth"):
    state = model.state_dict()
    for key, tensor in state.items():
        assert not tensor.is_floating_point() or bool((tensor != 0).all()), key  # every entry exercised
    path = tmp_path / name
    torch.save({"base_model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3,
                "metrics": {"acc": 90.0}, "best_metrics": {"acc": 90.0}}, path)
    return path


def most_l(seed=5, **options):
    torch.manual_seed(seed)
    return get_peft_model(pcpeft.create_model("pointgpt_l", **TINY_L), {"method": "most", **options})


def test_official_file_gives_the_official_logits_batched_and_alone(tmp_path):
    official = reference()
    model = most_l()
    report = pcpeft.load_checkpoint(model, official_file(tmp_path, official), strict=True)
    assert report.ok and report.layout == "most_official"
    assert len(report.loaded) == len(official.state_dict()) == len(model.state_dict())
    assert sum("point_monarch" in k for k in report.loaded) == 9 * (6 + 2)
    x = cloud()
    with torch.no_grad():
        batched, expected = model.eval()(x), official(x)[0]
        assert (batched - expected).abs().max() < 1e-4 and expected.abs().max() > 0.1
        for i in range(2):
            alone = model(x[i:i + 1])
            assert (alone - official(x[i:i + 1])[0]).abs().max() < 1e-4
            assert (alone - batched[i:i + 1]).abs().max() > 1e-3  # the batch-mean term is there


def test_the_generator_blocks_carry_their_point_monarch(tmp_path):
    """Training forward: the generator's Chamfer loss (4 generator blocks with MoST in the official model) agrees."""
    official = reference()
    model = most_l()
    pcpeft.load_checkpoint(model, official_file(tmp_path, official), strict=True)
    x = cloud()
    model.train()
    official.train()
    with torch.no_grad():
        model(x)
        got = model.base_model.auxiliary_loss()
        expected = official(x)[1]
    assert abs(got.item() - expected.item()) < 1e-4 * max(1.0, expected.item())


def test_official_counts_and_key_layout_at_pointgpt_l_size():
    for classes, trainable, total in ((15, 8_142_095, 368_000_463), (40, 8_148_520, 368_006_888)):
        with torch.device("meta"):
            model = get_peft_model(pcpeft.create_model("pointgpt_l", num_classes=classes, num_group=128), "most")
        assert model.trainable_parameters() == (trainable, total)
    keys = model.official_state_dict()
    assert len(keys) == 648 and "blocks.cls_token_norm.weight" in keys
    assert sum("point_monarch" in k for k in keys) == 252
    assert tuple(keys["generator_blocks.layers.3.point_monarch.monarch_linear.blkdiag2"].shape) == (8, 128, 128)
    assert "blocks.layers.23.point_monarch.spatial_smooth_out.ln.bias" in keys
    ours = {k[len("base_model."):] for k in model.state_dict() if k.startswith("base_model.")}
    backbone = {pointgpt_key(k) for k in keys if "cls_token_norm" not in k}
    assert {k.replace("attn.base.", "attn.") for k in ours} == backbone
    trained = {k for k, p in model.named_parameters() if p.requires_grad}
    official_rule = {k for k in model.state_dict() if "cls" in k or "monarch" in k}
    assert trained == {k for k in official_rule if "running" not in k and "num_batches" not in k}


def test_the_monarch_map_is_the_official_permuted_block_product():
    torch.manual_seed(0)
    layer = MonarchLinear(64, 64, 8)
    with torch.no_grad():
        layer.blkdiag1.normal_()
        layer.blkdiag2.normal_()
        layer.bias.normal_()
        x = torch.randn(5, 64)
        dense = ref.monarch_dense(layer.blkdiag1, layer.blkdiag2)
        assert (layer(x) - (x @ dense.t() + layer.bias)).abs().max() < 1e-4
        assert (layer.dense_weight() - dense).abs().max() < 1e-5
        plain = torch.block_diag(*layer.blkdiag2) @ torch.block_diag(*layer.blkdiag1)  # no permutation
        assert (dense - plain).abs().max() > 1.0


def test_per_sample_bias_makes_a_clouds_logits_independent_of_its_batch(tmp_path):
    path = official_file(tmp_path, reference())
    model = most_l(per_sample_bias=True)
    pcpeft.load_checkpoint(model, path, strict=True)
    x = cloud(batch=3)
    with torch.no_grad():
        batched = model.eval()(x)
        for i in range(3):
            assert (model(x[i:i + 1]) - batched[i:i + 1]).abs().max() < 1e-5


def test_official_init_gives_the_monarch_factors_exactly_zero_gradient():
    model = most_l().train()
    loss = F.cross_entropy(model(cloud()), torch.tensor([0, 1])) + model.aux_loss()
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if "point_monarch" in n}
    assert len(grads) == 9 * (6 + 2)
    for name, grad in grads.items():
        if "blkdiag" in name or "knorm" in name:
            assert grad is not None and torch.count_nonzero(grad) == 0, name
        elif name.endswith("monarch_linear.bias"):
            assert grad.abs().sum() > 0, name  # the per-block bias is what the official recipe trains
        else:
            assert grad is None, name  # the unused LayerNorm `ln`
    corrected = most_l(factor_init="kaiming_zero").train()
    monarch = corrected.base_model.blocks.blocks[0].point_monarch.monarch_linear
    assert monarch.blkdiag1.abs().min() > 0 and torch.count_nonzero(monarch.dense_weight()) == 0  # same start
    (F.cross_entropy(corrected(cloud()), torch.tensor([0, 1])) + corrected.aux_loss()).backward()
    assert monarch.blkdiag2.grad.abs().sum() > 0


def test_fused_layers_follow_the_official_formula():
    assert fused_layers(24, 3) == (7, 15, 23)
    assert fused_layers(12, 3) == (3, 7, 11)
    assert fused_layers(6, 3) == (1, 3, 5)
    assert fused_layers(4, 3) == (1, 2, 3)
    assert fused_layers(2, 3) == (1,)
    with pytest.raises(PeftError, match="depth >= 2"):
        fused_layers(1, 3)


BACKBONES = {
    "pointgpt_s": dict(TINY, decoder_depth=1),
    "pointgpt_b": dict(TINY, decoder_depth=1),
    "point_mae": dict(TINY, encoder_dims=48),
    "act": dict(TINY, encoder_dims=48),
    "point_bert": TINY,
}


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_other_backbones_run_train_and_round_trip_adapter_only(tmp_path, backbone):
    torch.manual_seed(7)
    pretrained = pcpeft.create_model(backbone, **BACKBONES[backbone]).state_dict()
    net = pcpeft.create_model(backbone, **BACKBONES[backbone])
    net.load_state_dict(pretrained)
    model = get_peft_model(net, {"method": "most", "monarch_blocks": 4, "factor_init": "kaiming_zero"}).train()
    loss = F.cross_entropy(model(cloud()), torch.tensor([0, 1])) + model.aux_loss()
    loss.backward()
    stacks = 2 if backbone.startswith("pointgpt") else 1
    monarch = [p for n, p in model.named_parameters() if "point_monarch" in n and n.endswith("blkdiag2")]
    assert len(monarch) == 2 + stacks - 1 and all(p.grad.abs().sum() > 0 for p in monarch)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(0.01 * torch.randn_like(param))
    model.eval()
    x = cloud(seed=9)
    with torch.no_grad():
        expected = model(x)
    model.save_pretrained(tmp_path / "adapter")
    fresh = pcpeft.create_model(backbone, **BACKBONES[backbone])
    fresh.load_state_dict(pretrained)
    restored = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(restored(x), expected)


@pytest.mark.parametrize("backbone, reason", [("recon", "ReCon"), ("vit_tiny_patch16_224", "group_divider"),
                                              ("point_mae_partseg", "classification head")])
def test_backbones_it_does_not_fit_are_refused_with_the_reason(backbone, reason):
    options = {"recon": dict(TINY, encoder_dims=48), "vit_tiny_patch16_224": dict(num_classes=5, depth=2)}
    options = options.get(backbone, {})
    with torch.device("meta"), pytest.raises(PeftError, match=reason):
        get_peft_model(pcpeft.create_model(backbone, **options), "most")


def test_merge_is_refused_because_the_adaptive_bias_depends_on_the_attention_output():
    model = most_l().eval()
    with pytest.raises(PeftError, match="most"):
        model.merge_and_unload()
    # why even zero factors do not fold: moving the Monarch bias into attn.proj.bias changes the logits
    block = model.base_model.blocks.blocks[2]
    x = cloud()
    with torch.no_grad():
        bias = block.point_monarch.monarch_linear.bias
        bias.normal_()
        before = model(x)
        block.attn.base.proj.bias += bias
        bias.zero_()
        assert (model(x) - before).abs().max() > 1e-3


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnx export needs onnxruntime")
def test_onnx_export_on_point_mae_and_refusal_on_pointgpt(tmp_path):
    from pcpeft.export.deploy import ExportError
    from pcpeft.export.onnx_export import export_onnx, verify_onnx

    torch.manual_seed(0)
    model = get_peft_model(pcpeft.create_model("point_mae", **TINY, encoder_dims=48),
                           {"method": "most", "monarch_blocks": 4, "factor_init": "kaiming_zero"}).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "point_monarch" in name:
                param.normal_(0, 0.3)
    export_onnx(model, tmp_path / "most.onnx", 256)
    assert verify_onnx(model, tmp_path / "most.onnx", 256, batches=(1, 3)) < 1e-4
    with pytest.raises(ExportError, match="ChainOrderedGrouper"):
        export_onnx(most_l().eval(), tmp_path / "gpt.onnx", 256)


def test_converter_round_trip_of_an_official_file_is_bit_exact(tmp_path):
    from pcpeft.peft.convert import adapter_to_official, official_to_adapter

    official = reference()
    path = official_file(tmp_path, official)
    frozen = {k: v for k, v in official.state_dict().items() if "point_monarch" not in k and "cls_token_norm" not in k}
    torch.save({"base_model": frozen}, tmp_path / "pretrain.pth")
    options = dict(TINY_L)
    official_to_adapter(path, tmp_path / "adapter", {"method": "most"}, "pointgpt_l", options)
    adapter_to_official(tmp_path / "adapter", tmp_path / "back.pth", tmp_path / "pretrain.pth",
                        model_options=options)
    original, back = torch.load(path), torch.load(tmp_path / "back.pth")
    assert list(back["base_model"]) == list(original["base_model"])
    for key, value in original["base_model"].items():
        assert torch.equal(back["base_model"][key], value), key
