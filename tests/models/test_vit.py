import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pcpeft
from pcpeft import get_peft_model, load_checkpoint
from pcpeft.models.vit import resample_pos_embed

SMALL = dict(num_classes=7, img_size=32, patch_size=8, depth=2)


def reference_vit_logits(sd, images, heads, patch, eps=1e-6):
    """timm's VisionTransformer forward written out functionally from a timm-layout state dict."""
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["cls_token"].expand(x.shape[0], -1, -1), x], 1) + sd["pos_embed"]
    dim = x.shape[-1]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for i in range(depth):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps)
        b, n, _ = h.shape
        q, k, v = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).reshape(
            b, n, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) * (dim // heads) ** -0.5).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, dim)
        x = x + F.linear(out, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(x, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps)
        x = x + F.linear(F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                         sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    x = F.layer_norm(x, (dim,), sd["norm.weight"], sd["norm.bias"], eps)
    return F.linear(x[:, 0], sd["head.weight"], sd["head.bias"])


def random_timm_state(seed=0, **kw):
    torch.manual_seed(seed)
    model = pcpeft.create_model("vit_tiny_patch16_224", **{**SMALL, **kw})
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * (0.05 if v.dim() > 1 else 0.2) + (1.0 if "norm" in k and
            k.endswith("weight") else 0.0) for k, v in model.state_dict().items()}


def images(n=3, size=32, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_parameter_count_of_vit_base_equals_timm():
    model = pcpeft.create_model("vit_base_patch16_224", num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == 86_567_656


@pytest.mark.parametrize("suffix, wrap", [(".pth", "model"), (".pth", None), (".safetensors", None),
                                          (".bin", "state_dict")])
def test_timm_layout_files_load_key_by_key_and_match_the_reference_forward(tmp_path, suffix, wrap):
    state = random_timm_state()
    path = tmp_path / f"vit{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save({wrap: state} if wrap else state, path)
    model = pcpeft.create_model("vit_tiny_patch16_224", **SMALL)
    report = load_checkpoint(model, path, strict=True)
    assert report.ok and report.loaded == sorted(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference_vit_logits(state, x, 3, 8), atol=1e-4, rtol=0)


def to_jax_npz(state, path, heads, extra=True):
    """Write a timm-layout state dict in the original google-research ViT .npz layout (independent inverse map)."""
    dim = state["cls_token"].shape[-1]
    hd = dim // heads
    a = {"embedding/kernel": state["patch_embed.proj.weight"].permute(2, 3, 1, 0),
         "embedding/bias": state["patch_embed.proj.bias"], "cls": state["cls_token"],
         "Transformer/posembed_input/pos_embedding": state["pos_embed"],
         "Transformer/encoder_norm/scale": state["norm.weight"], "Transformer/encoder_norm/bias": state["norm.bias"],
         "head/kernel": state["head.weight"].t(), "head/bias": state["head.bias"]}
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for i in range(depth):
        p, s = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        mha = p + "MultiHeadDotProductAttention_1/"
        a[p + "LayerNorm_0/scale"], a[p + "LayerNorm_0/bias"] = state[s + "norm1.weight"], state[s + "norm1.bias"]
        a[p + "LayerNorm_2/scale"], a[p + "LayerNorm_2/bias"] = state[s + "norm2.weight"], state[s + "norm2.bias"]
        w, b = state[s + "attn.qkv.weight"], state[s + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            a[f"{mha}{name}/kernel"] = w[j * dim:(j + 1) * dim].t().reshape(dim, heads, hd)
            a[f"{mha}{name}/bias"] = b[j * dim:(j + 1) * dim].reshape(heads, hd)
        a[mha + "out/kernel"] = state[s + "attn.proj.weight"].t().reshape(heads, hd, dim)
        a[mha + "out/bias"] = state[s + "attn.proj.bias"]
        a[p + "MlpBlock_3/Dense_0/kernel"] = state[s + "mlp.fc1.weight"].t()
        a[p + "MlpBlock_3/Dense_0/bias"] = state[s + "mlp.fc1.bias"]
        a[p + "MlpBlock_3/Dense_1/kernel"] = state[s + "mlp.fc2.weight"].t()
        a[p + "MlpBlock_3/Dense_1/bias"] = state[s + "mlp.fc2.bias"]
    if extra:
        a["pre_logits/kernel"], a["pre_logits/bias"] = torch.zeros(dim, dim), torch.zeros(dim)
    np.savez(path, **{k: v.numpy() for k, v in a.items()})


def test_jax_npz_weights_load_and_match(tmp_path):
    state = random_timm_state(seed=2)
    to_jax_npz(state, tmp_path / "ViT-B_16.npz", heads=3)
    model = pcpeft.create_model("vit_tiny_patch16_224", **SMALL)
    report = load_checkpoint(model, tmp_path / "ViT-B_16.npz", strict=True)
    assert report.layout == "vit_jax_npz" and report.ok
    assert sorted(sum(report.expected_absent.values(), [])) == ["pre_logits/bias", "pre_logits/kernel"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key], atol=0, rtol=0, msg=key)
    x = images(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference_vit_logits(state, x, 3, 8), atol=1e-4, rtol=0)


def test_pos_embed_is_resized_for_another_image_size(tmp_path):
    state = random_timm_state()
    torch.save(state, tmp_path / "vit.pth")
    model = pcpeft.create_model("vit_tiny_patch16_224", **{**SMALL, "img_size": 48})  # grid 4x4 -> 6x6
    report = load_checkpoint(model, tmp_path / "vit.pth", strict=True)
    assert report.ok and model.pos_embed.shape == (1, 37, 192)
    grid = state["pos_embed"][:, 1:].reshape(1, 4, 4, 192).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 6), mode="bicubic", antialias=True).permute(0, 2, 3, 1).reshape(1, 36, 192)
    torch.testing.assert_close(model.pos_embed[:, 1:], expected)
    assert torch.equal(model.pos_embed[:, :1], state["pos_embed"][:, :1])
    with pytest.raises(ValueError, match="not a square grid"):
        resample_pos_embed(torch.zeros(1, 1 + 15, 4), 4)


def test_ssf_merge_on_the_vit_including_the_patch_embedding():
    torch.manual_seed(0)
    model = get_peft_model(pcpeft.create_model("vit_tiny_patch16_224", **SMALL), "ssf").eval()
    assert type(model.base_model.patch_embed).__name__ == "SSFWrapper"
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ssf_scale" in name:
                p.uniform_(0.5, 1.5)
            elif "ssf_shift" in name:
                p.normal_(0, 0.1)
    x = images(seed=5)
    with torch.no_grad():
        before = model(x)
        merged = model.merge_and_unload().eval()
        after = merged(x)
    plain = pcpeft.create_model("vit_tiny_patch16_224", **SMALL)
    assert set(merged.state_dict()) == set(plain.state_dict())
    assert sum(p.numel() for p in merged.parameters()) == sum(p.numel() for p in plain.parameters())
    assert (before - after).abs().max() < 1e-5


@pytest.mark.parametrize("spec", ["adapter", "smoa", "lora"])
def test_zero_init_methods_are_identity_on_the_vit(spec):
    torch.manual_seed(0)
    model = pcpeft.create_model("vit_tiny_patch16_224", **SMALL).eval()
    x = images()
    with torch.no_grad():
        plain = model(x)
        assert torch.equal(get_peft_model(model, spec).eval()(x), plain)
