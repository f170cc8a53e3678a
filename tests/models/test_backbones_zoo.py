"""PointGPT-S/B/L, ReCon and ACT: official-layout files through ``load_checkpoint`` give the independent
restatements' logits (tests/references/backbones.py) to 1e-4, load reports name what is absent by design, and the
full-size models have the official parameter counts."""
import numpy as np
import pytest
import torch

import pcpeft
from pcpeft import load_checkpoint
from pcpeft.models.layouts import pointgpt_key
from pcpeft.models.point_tokenizer import SinePositionalEncoding
from pcpeft.models.token_order import nearest_neighbour_chain
from tests.references.backbones import (
    RefPointGPT,
    RefRecon,
    numpy_chain,
    one_thread,  # noqa: F401  (autouse fixture)
    sine_positions,
)
from tests.references.impl import RefPointTransformer, randomise

G, M, DIM = 16, 8, 48
TINY = {"trans_dim": DIM, "depth": 2, "num_heads": 4}
#: backbone -> (independent reference (classes) -> module, our builder (classes) -> module)
BACKBONES = {
    "pointgpt_s": (lambda c: RefPointGPT(c, G, M, dim=DIM, depth=2, heads=4, decoder_depth=1),
                   lambda c: pcpeft.create_model("pointgpt_s", num_classes=c, num_group=G, group_size=M,
                                                 decoder_depth=1, **TINY)),
    "pointgpt_l": (lambda c: RefPointGPT(c, G, M, dim=DIM, depth=2, heads=4, decoder_depth=1, large=True),
                   lambda c: pcpeft.create_model("pointgpt_l", num_classes=c, num_group=G, group_size=M,
                                                 decoder_depth=1, **TINY)),
    "recon": (lambda c: RefRecon(c, G, M, dim=DIM, depth=2, heads=4),
              lambda c: pcpeft.create_model("recon", num_classes=c, num_group=G, group_size=M, encoder_dims=DIM,
                                            **TINY)),
    "act": (lambda c: RefPointTransformer(c, G, M, depth=2, dim=DIM, heads=4),
            lambda c: pcpeft.create_model("act", num_classes=c, num_group=G, group_size=M, encoder_dims=DIM,
                                          **TINY)),
}


def official_state(name, classes=15, seed=3):
    return randomise(BACKBONES[name][0](classes), seed=seed).state_dict()


def reference(name, state, classes=15):
    ref = BACKBONES[name][0](classes)
    ref.load_state_dict(state)
    return ref


def cloud(seed=0, batch=2):
    return torch.randn(batch, 256, 3, generator=torch.Generator().manual_seed(seed))


def logits_of(model, pts):
    with torch.no_grad():
        out = model.eval()(pts)
    return out[0] if isinstance(out, tuple) else out


def save(tmp_path, name, base_model):
    path = tmp_path / name
    torch.save({"base_model": base_model, "optimizer": {}, "epoch": 3, "metrics": {}, "best_metrics": {}}, path)
    return path


@pytest.mark.parametrize("ddp", [False, True])
@pytest.mark.parametrize("name", list(BACKBONES))
def test_finetuned_file_reproduces_official_logits(tmp_path, name, ddp):
    state = official_state(name)
    prefix = "module." if ddp else ""
    path = save(tmp_path, "ckpt-best.pth", {prefix + k: v for k, v in state.items()})
    model = BACKBONES[name][1](15)
    report = load_checkpoint(model, path, strict=True)
    assert report.ok and report.expected_absent == {}
    assert report.layout == ("pointgpt_finetuned" if name.startswith("pointgpt") else "finetuned")
    assert len(report.loaded) == len(state) == len(model.state_dict())
    pts = cloud()
    expected = logits_of(reference(name, state), pts)
    assert expected.abs().max() > 1.0
    torch.testing.assert_close(logits_of(model, pts), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["pointgpt_s", "pointgpt_l"])
def test_pointgpt_generator_loss_matches_official(name):
    state = official_state(name)
    model = BACKBONES[name][1](15)
    model.load_state_dict({pointgpt_key(k): v for k, v in state.items()}, strict=True)
    ref = reference(name, state)
    pts = cloud(1, batch=3)
    with torch.no_grad():
        _, expected = ref.train()(pts)  # BN batch statistics in both; no dropout before the generator
        model.train()(pts)
    assert float(expected) > 0.1
    torch.testing.assert_close(model.auxiliary_loss(), expected, atol=1e-4, rtol=1e-5)
    peft = pcpeft.get_peft_model(model, "full").train()
    peft(pts)
    assert type(model).aux_loss_weight == 3.0
    torch.testing.assert_close(peft.aux_loss(), 3.0 * model.auxiliary_loss())
    peft.eval()(pts)  # evaluation ignores the generator
    assert float(peft.aux_loss()) == 0.0 and float(model.auxiliary_loss()) == 0.0


def test_pointgpt_pretrain_layout(tmp_path):
    state = official_state("pointgpt_s")
    absent = ("cls_token", "cls_pos", "blocks.cls_norm.", "blocks.cls_head_finetune.")
    base = {f"module.GPT_Transformer.{k}": v for k, v in state.items() if not k.startswith(absent)}
    model = BACKBONES["pointgpt_s"][1](15)
    head_before = model.cls_head_finetune[0].weight.detach().clone()
    report = load_checkpoint(model, save(tmp_path, "pretrain.pth", base), strict=True)
    assert report.layout == "pointgpt_pretrain" and report.ok
    absent_keys = set().union(*report.expected_absent.values())
    assert {"cls_token", "cls_pos", "cls_norm.weight", "cls_head_finetune.8.bias"} <= absent_keys
    assert all(k.startswith(("cls_", "cls_norm", "cls_head_finetune")) for k in absent_keys)
    assert len(report.loaded) == len(base)
    torch.testing.assert_close(model.blocks.blocks[1].attn.qkv.bias, state["blocks.layers.1.attn.in_proj_bias"])
    torch.testing.assert_close(model.generator.blocks[0].mlp.fc2.weight,
                               state["generator_blocks.layers.0.mlp.2.weight"])
    assert torch.equal(model.cls_head_finetune[0].weight, head_before)


def test_pointgpt_post_pretrain_file_drops_its_87_class_head(tmp_path):
    state = official_state("pointgpt_l", classes=87)
    model = BACKBONES["pointgpt_l"][1](15)
    report = load_checkpoint(model, save(tmp_path, "post_pretrain.pth", {f"module.{k}": v for k, v in state.items()}),
                             strict=True)
    assert report.layout == "pointgpt_post_pretrain" and report.ok
    dropped = next(keys for reason, keys in report.expected_absent.items() if reason.startswith("post-pre-training"))
    assert set(dropped) == {k for k in state if k.startswith("blocks.cls_head_finetune.")}
    own_head = next(keys for reason, keys in report.expected_absent.items() if reason.startswith("classification"))
    assert set(own_head) == {k for k in model.state_dict() if k.startswith("cls_head_finetune.")}
    kept = {pointgpt_key(k): v for k, v in state.items() if not k.startswith("blocks.cls_head_finetune.")}
    own = model.state_dict()
    assert sorted(report.loaded) == sorted(kept)
    assert all(torch.equal(own[k], v) for k, v in kept.items())


def test_recon_pretrain_layout(tmp_path):
    state = official_state("recon")
    base = {f"module.MAE_encoder.{k}": v for k, v in state.items() if not k.startswith("cls_head_finetune")}
    decoder = {"module.mask_token": torch.zeros(1, 1, DIM), "module.decoder_pos_embed.0.weight": torch.zeros(128, 3),
               "module.MAE_decoder.blocks.0.norm1.weight": torch.ones(DIM),
               "module.increase_dim.0.weight": torch.zeros(3 * M, DIM, 1),
               "module.img_proj.weight": torch.zeros(768, DIM), "module.text_proj.weight": torch.zeros(512, DIM)}
    model = BACKBONES["recon"][1](15)
    report = load_checkpoint(model, save(tmp_path, "recon.pth", {**base, **decoder}), strict=True)
    assert report.layout == "recon_pretrain" and report.ok
    dropped = next(keys for reason, keys in report.expected_absent.items() if "decoder" in reason)
    assert set(dropped) == {k[len("module."):] for k in decoder}
    head = next(keys for reason, keys in report.expected_absent.items() if reason.startswith("classification"))
    assert set(head) == {k for k in model.state_dict() if k.startswith("cls_head_finetune.")}
    for key in ("cls_token", "cls_pos", "img_token", "text_pos", "blocks.blocks.1.attn_contrast.kv.weight"):
        assert torch.equal(model.state_dict()[key], state[key])  # tokens come from the pre-training file


def test_act_pretrain_layout(tmp_path):
    state = official_state("act")
    encoder = {f"module.ACT_encoder.{k}": v for k, v in state.items() if not k.startswith("cls_head_finetune")}
    heads = {"module.ACT_encoder.lm_head.weight": torch.zeros(8192, DIM),
             "module.ACT_encoder.cls_head.0.weight": torch.zeros(512, DIM),
             "module.ACT_encoder.cls_head.2.bias": torch.zeros(512)}
    teacher = {"module.dvae_tokenizer.encoder.first_conv.0.weight": torch.zeros(128, 3, 1),
               "module.dvae_tokenizer.dgcnn_1.conv.0.weight": torch.zeros(4, 4)}
    decoder = {"module.mask_token": torch.zeros(1, 1, DIM), "module.proj_head.weight": torch.zeros(DIM, DIM),
               "module.decoder_pos_embed.2.bias": torch.zeros(DIM),
               "module.ACT_decoder.blocks.0.norm1.weight": torch.ones(DIM)}
    model = BACKBONES["act"][1](15)
    report = load_checkpoint(model, save(tmp_path, "act.pth", {**encoder, **heads, **teacher, **decoder}),
                             strict=True)
    assert report.layout == "act_pretrain" and report.ok
    def absent(word):
        return next(set(keys) for reason, keys in report.expected_absent.items() if word in reason)

    def strip(keys):
        return {k[len("module."):] for k in keys}

    assert absent("teacher") == strip(teacher) and absent("decoder") == strip(decoder)
    assert absent("heads of the encoder") == strip(heads)
    assert absent("classification head") == {k for k in model.state_dict() if k.startswith("cls_head_finetune")}
    assert torch.equal(model.cls_token, state["cls_token"]) and torch.equal(model.cls_pos, state["cls_pos"])
    assert len(report.loaded) == len(encoder)


FULL_SIZE = {  # name: (parameters at 15 classes, state-dict entries)
    "pointgpt_s": (29_232_335, 243), "pointgpt_b": (120_461_263, 250), "pointgpt_l": (360_457_679, 394),
    "recon": (43_571_215, 322), "act": (22_093_327, 174),
}


def test_full_size_parameter_counts_and_official_layout():
    """Built on the meta device: the structure without the 2 GB of weights (L alone is 360M parameters)."""
    refs = {"pointgpt_s": lambda: RefPointGPT(15, 64, 32),
            "pointgpt_b": lambda: RefPointGPT(15, 64, 32, dim=768, heads=12, large=True),
            "pointgpt_l": lambda: RefPointGPT(15, 64, 32, dim=1024, depth=24, heads=16, large=True),
            "recon": lambda: RefRecon(15, 64, 32), "act": lambda: RefPointTransformer(15, 64, 32)}
    for name, (count, entries) in FULL_SIZE.items():
        with torch.device("meta"):
            model = pcpeft.create_model(name, num_classes=15)
            ref = refs[name]()
        assert sum(p.numel() for p in model.parameters()) == count, name
        own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        mapped = {(pointgpt_key(k) if name.startswith("pointgpt") else k): tuple(v.shape)
                  for k, v in ref.state_dict().items()}
        assert len(own) == entries and own == mapped, name
        if name == "pointgpt_s":
            assert sum(p.numel() for p in model.generator.parameters()) == 7_135_968
        del model, ref


def test_nearest_neighbour_chain_and_sine_encoding_match_the_restatements():
    centres = torch.randn(3, 40, 3, generator=torch.Generator().manual_seed(4))
    order = nearest_neighbour_chain(centres)
    for cloud_centres, got in zip(centres, order):
        assert got.tolist() == numpy_chain(cloud_centres.numpy()).tolist()
    assert sorted(order[0].tolist()) == list(range(40))
    for dim in (48, 384, 1024):  # 1024: 4 zero-padded dims
        xyz = torch.rand(2, 5, 3) * 2 - 1
        torch.testing.assert_close(SinePositionalEncoding(dim)(xyz), sine_positions(xyz, dim), atol=1e-5, rtol=0)
    assert torch.equal(SinePositionalEncoding(1024)(xyz)[..., -4:], torch.zeros(2, 5, 4))
    assert np.isclose(float(SinePositionalEncoding(48)(torch.full((1, 3), 0.25))[0, 0]), 1.0)
