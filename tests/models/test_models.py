import pytest
import torch
import torch.nn.functional as F

import pcpeft
from pcpeft.models import Attention, Block, BlockStack, DropPath
from tests.references.impl import RefPointTransformer, randomise


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_point_mae_parameter_counts_match_reference():
    assert n_params(pcpeft.create_model("point_mae", num_classes=15)) == 22_093_327
    assert n_params(pcpeft.create_model("point_mae", num_classes=40, num_group=512)) == 22_099_752


@pytest.mark.parametrize("bert", [False, True])
def test_parameter_count_equals_independent_reference(bert):
    ours = pcpeft.create_model("point_bert" if bert else "point_mae", num_classes=15)
    assert n_params(ours) == n_params(RefPointTransformer(15, 64, 32, bert=bert))
    assert set(ours.state_dict()) == set(RefPointTransformer(15, 64, 32, bert=bert).state_dict())


@pytest.mark.parametrize("name", ["point_mae", "point_bert"])
def test_forward_shapes(name):
    model = pcpeft.create_model(name, num_classes=7, num_group=32, group_size=16).eval()
    pts = torch.randn(2, 512, 3)
    tokens = model.forward_features(pts)
    assert tokens.shape == (2, 1 + 32, 384)
    assert model.forward_head(tokens, pre_logits=True).shape == (2, 768)
    assert model.forward_head(tokens).shape == (2, 7)
    assert torch.equal(model(pts), model.forward_head(tokens))


@pytest.mark.parametrize("bert", [False, True])
def test_logits_match_independent_reference(bert):
    """Fidelity: same weights, same cloud -> the reference computation's logits to 1e-4 (float32, CPU)."""
    ref = randomise(RefPointTransformer(15, 64, 32, bert=bert), seed=1).eval()
    ours = pcpeft.create_model("point_bert" if bert else "point_mae", num_classes=15, num_group=64, group_size=32)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    pts = torch.randn(3, 1024, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, got = ref(pts), ours(pts)
    assert expected.abs().max() > 1.0  # non-trivial logits
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_block_exposes_named_sublayers_for_peft():
    block = Block(64, 4)
    for name in ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]:
        assert isinstance(block.get_submodule(name), torch.nn.Module)
    assert block.attn.qkv.bias is None
    assert Block(64, 4, qkv_bias=True).attn.qkv.bias is not None


def test_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(48, 6, qkv_bias=True).eval()
    x = torch.randn(2, 10, 48)
    qkv = attn.qkv(x).reshape(2, 10, 3, 6, 8).permute(2, 0, 3, 1, 4)
    weights = (qkv[0] @ qkv[1].transpose(-2, -1) * 8 ** -0.5).softmax(-1)
    expected = attn.proj((weights @ qkv[2]).transpose(1, 2).reshape(2, 10, 48))
    torch.testing.assert_close(attn(x), expected, atol=1e-6, rtol=1e-5)


def test_position_embedding_is_added_before_every_block():
    stack = BlockStack(16, 3, 2).eval()
    x, pos = torch.randn(1, 5, 16), torch.randn(1, 5, 16)
    expected = x
    for block in stack:
        expected = block(expected + pos)
    torch.testing.assert_close(stack(x, pos), expected)


def test_drop_path_schedule_and_behaviour():
    stack = BlockStack(16, 12, 2, drop_path_rate=0.1)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in stack]
    assert rates[0] == 0.0 and abs(rates[-1] - 0.1) < 1e-7 and rates == sorted(rates)
    dp = DropPath(0.5)
    x = torch.ones(1000, 4)
    assert torch.equal(dp.eval()(x), x)
    out = dp.train()(x)
    assert set(out.unique().tolist()) == {0.0, 2.0}


@pytest.mark.parametrize("name", ["point_mae", "point_bert"])
def test_training_step_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = pcpeft.create_model(name, num_classes=5, num_group=16, group_size=8, depth=2).train()
    logits = model(torch.randn(4, 256, 3))
    F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert no_grad == []


def test_registry_errors_name_the_options():
    assert {"point_mae", "point_bert"} <= set(pcpeft.list_models())
    with pytest.raises(ValueError, match="unknown model 'pointmae'"):
        pcpeft.create_model("pointmae")
    with pytest.raises(TypeError, match="num_group"):
        pcpeft.create_model("point_mae", num_groups=3)


def test_bad_input_shape_is_a_clear_error():
    model = pcpeft.create_model("point_mae", num_classes=3, num_group=8, group_size=4, depth=1).eval()
    with pytest.raises(ValueError, match=r"\(B, N, 3\) \(xyz only\), got \(2, 64, 6\)"):
        model(torch.randn(2, 64, 6))


def _layout(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.mark.parametrize("name, options", [
    ("point_bert", {"encoder_dims": 256, "tokenizer_projection": True, "head": "light",
                    "checkpoint_layout": "point_bert"}),
    ("recon", {"global_tokens": ("img", "text"), "block_residual": "normed", "drop_path_rate": 0.2,
               "checkpoint_layout": "recon"}),
])
def test_backbones_differ_only_by_typed_options(name, options):
    """Point-MAE's builder given another backbone's typed options builds that backbone: the same tensors, the same
    logits for the same weights, the same official layout family. Nothing depends on the model's name."""
    small = {"num_classes": 5, "trans_dim": 48, "depth": 2, "num_heads": 4, "num_group": 8, "group_size": 8,
             "encoder_dims": 32 if name == "point_bert" else 48}
    named = pcpeft.create_model(name, **small)
    built = pcpeft.create_model("point_mae", **{**options, **small})
    assert _layout(built) == _layout(named)
    built.load_state_dict(named.state_dict())
    points = torch.randn(2, 64, 3)
    torch.testing.assert_close(built.eval()(points), named.eval()(points))
    assert built.config.checkpoint_layout == named.config.checkpoint_layout == options["checkpoint_layout"]


def test_created_models_record_their_registered_name_and_task():
    from pcpeft.models.registry import model_task

    assert pcpeft.create_model("act", num_classes=3, depth=1).registered_name == "act"
    assert model_task("point_bert_partseg") == "partseg" and model_task("pointgpt_s") == "classification"
