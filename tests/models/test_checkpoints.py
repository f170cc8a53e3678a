import pytest
import torch

import pcpeft
from pcpeft import CheckpointError, load_checkpoint
from tests.references.impl import RefPointTransformer, randomise

G, M = 32, 16


def ref_state(bert=False, classes=15, seed=3):
    return randomise(RefPointTransformer(classes, G, M, bert=bert, depth=12), seed=seed).state_dict()


def build(bert=False, classes=15):
    return pcpeft.create_model("point_bert" if bert else "point_mae", num_classes=classes, num_group=G, group_size=M)


def mae_pretrain_file(tmp_path, state):
    """Point-MAE pre-training layout: MAE_encoder.* (no cls token/pos/head) + decoder keys, DDP 'module.'."""
    base = {f"module.MAE_encoder.{k}": v for k, v in state.items()
            if not k.startswith(("cls_token", "cls_pos", "cls_head_finetune"))}
    base.update({"module.mask_token": torch.zeros(1, 1, 384),
                 "module.MAE_decoder.blocks.0.norm1.weight": torch.ones(384),
                 "module.decoder_pos_embed.0.weight": torch.zeros(128, 3),
                 "module.increase_dim.0.weight": torch.zeros(96, 384, 1)})
    path = tmp_path / "pretrain.pth"
    torch.save({"base_model": base, "epoch": 300, "metrics": {"acc": 0.0}, "optimizer": {}}, path)
    return path


def bert_pretrain_file(tmp_path, state):
    """Point-BERT pre-training layout: transformer_q.* (+ cls_head, lm_head, mask_token), transformer_k, dvae."""
    base = {f"transformer_q.{k}": v for k, v in state.items() if not k.startswith("cls_head_finetune")}
    base.update({"transformer_q.cls_head.0.weight": torch.zeros(256, 384),
                 "transformer_q.lm_head.weight": torch.zeros(8192, 384),
                 "transformer_q.mask_token": torch.zeros(1, 1, 384),
                 "transformer_k.cls_token": torch.zeros(1, 1, 384),
                 "dvae.encoder.first_conv.0.weight": torch.zeros(128, 3, 1),
                 "queue": torch.zeros(256, 16384), "queue_ptr": torch.zeros(1, dtype=torch.long)})
    path = tmp_path / "Point-BERT.pth"
    torch.save({"base_model": base}, path)
    return path


@pytest.mark.parametrize("ddp", [False, True])
@pytest.mark.parametrize("bert", [False, True])
def test_finetuned_file_loads_every_key_and_reproduces_reference_logits(tmp_path, ddp, bert):
    state = ref_state(bert)
    prefix = "module." if ddp else ""
    path = tmp_path / "ckpt-best.pth"
    torch.save({"base_model": {prefix + k: v for k, v in state.items()}, "epoch": 12}, path)
    model = build(bert)
    report = load_checkpoint(model, path, strict=True)
    assert report.layout == "finetuned" and report.ok
    assert report.loaded == sorted(state) and report.expected_absent == {}
    ref = RefPointTransformer(15, G, M, bert=bert)
    ref.load_state_dict(state)
    pts = torch.randn(2, 512, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(pts), ref.eval()(pts), atol=1e-4, rtol=0)


def test_point_mae_pretrain_layout(tmp_path):
    state = ref_state()
    model = build()
    cls_before = model.cls_token.detach().clone()
    report = load_checkpoint(model, mae_pretrain_file(tmp_path, state), strict=True)
    assert report.layout == "point_mae_pretrain" and report.ok
    reasons = {r: set(keys) for r, keys in report.expected_absent.items()}
    dropped = next(keys for r, keys in reasons.items() if "decoder" in r)
    assert dropped == {"mask_token", "MAE_decoder.blocks.0.norm1.weight", "decoder_pos_embed.0.weight",
                       "increase_dim.0.weight"}
    absent = set().union(*(k for r, k in reasons.items() if "decoder" not in r))
    assert {"cls_token", "cls_pos", "cls_head_finetune.8.weight"} <= absent
    assert len(report.loaded) == len([k for k in state if not k.startswith(("cls_", "cls_head"))])
    assert torch.equal(model.blocks.blocks[3].attn.qkv.weight, state["blocks.blocks.3.attn.qkv.weight"])
    assert torch.equal(model.cls_token, cls_before)  # not in the file: left as built


def test_point_bert_pretrain_layout(tmp_path):
    state = ref_state(bert=True)
    model = build(bert=True)
    report = load_checkpoint(model, bert_pretrain_file(tmp_path, state), strict=True)
    assert report.layout == "point_bert_pretrain" and report.ok
    dropped = set(next(iter(v for r, v in report.expected_absent.items() if "pre-training only" in r)))
    assert {"transformer_q.cls_head.0.weight", "transformer_q.lm_head.weight", "transformer_q.mask_token",
            "transformer_k.cls_token", "dvae.encoder.first_conv.0.weight", "queue", "queue_ptr"} == dropped
    assert torch.equal(model.reduce_dim.weight, state["reduce_dim.weight"])
    assert torch.equal(model.cls_token, state["cls_token"])
    assert all(k.startswith("cls_head_finetune") for k in
               next(v for r, v in report.expected_absent.items() if r.startswith("classification head")))


def test_head_with_other_class_count_is_a_shape_mismatch(tmp_path):
    path = tmp_path / "mn40.pth"
    torch.save({"base_model": ref_state(classes=40)}, path)
    report = load_checkpoint(build(classes=15), path)
    assert not report.ok
    assert report.shape_mismatches == [("cls_head_finetune.8.weight", (40, 256), (15, 256)),
                                       ("cls_head_finetune.8.bias", (40,), (15,))]
    assert "shape mismatch for cls_head_finetune.8.weight: file [40, 256] vs model [15, 256]" in str(report)
    with pytest.raises(CheckpointError, match="cls_head_finetune.8.bias"):
        load_checkpoint(build(classes=15), path, strict=True)


def test_strict_lists_missing_and_unexpected_keys(tmp_path):
    state = ref_state()
    del state["norm.weight"]
    state["blocks.blocks.12.norm1.weight"] = torch.ones(384)
    path = tmp_path / "odd.pth"
    torch.save(state, path)  # a bare state dict, no wrapper
    report = load_checkpoint(build(), path)
    assert report.missing == ["norm.weight"] and report.unexpected == ["blocks.blocks.12.norm1.weight"]
    with pytest.raises(CheckpointError, match=r"(?s)odd\.pth.*missing from the file: norm\.weight.*"
                                              r"not in the model: blocks\.blocks\.12\.norm1\.weight"):
        load_checkpoint(build(), path, strict=True)


def test_not_a_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("this is not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pth is not a PyTorch checkpoint"):
        load_checkpoint(build(), path)
    with pytest.raises(CheckpointError, match="not found: .*missing.pth"):
        load_checkpoint(build(), tmp_path / "missing.pth")


def test_unknown_layout_names_the_file(tmp_path):
    path = tmp_path / "other_model.pth"
    torch.save({"state_dict": {"backbone.layer1.weight": torch.zeros(3)}}, path)
    with pytest.raises(CheckpointError, match="other_model.pth: unknown checkpoint layout"):
        load_checkpoint(build(), path)
    path2 = tmp_path / "no_tensors.pth"
    torch.save({"epoch": 3}, path2)
    with pytest.raises(CheckpointError, match="no_tensors.pth holds no tensors"):
        load_checkpoint(build(), path2)
