"""Point-MAE part segmentation: pcpeft's ``point_mae_partseg`` held to the independent restatement of the
official ``segmentation/models/pt.py`` ``get_model`` (tests/references/partseg.py): official sizes and keys, the
official fine-tuned file (``segmentation/main.py``'s ``best_model.pth``) gives the official log-probabilities to
1e-4, a Point-MAE pre-training file fills the encoder with an exact report, wrong sizes fail naming a key, and a
backward reaches every parameter."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pcpeft
from pcpeft import CheckpointError, load_checkpoint
from tests.references.backbones import one_thread  # noqa: F401  (autouse fixture)
from tests.references.partseg import (
    OFFICIAL_PARAMS,
    OFFICIAL_STATE_ENTRIES,
    RefPartSeg,
    official_param_count,
    one_hot,
    randomise_partseg,
)

G, M, DIM, PARTS = 16, 8, 32, 50
TINY = dict(num_parts=PARTS, num_categories=16, trans_dim=DIM, depth=4, num_heads=2, num_group=G, group_size=M,
            fetch_layers=(1, 2, 3))
HEAD = ("label_conv.", "propagation_0.", "convs1.", "convs2.", "convs3.", "bns1.", "bns2.")
CATEGORIES = torch.tensor([3, 12])


def reference(seed=0, **over):
    return randomise_partseg(RefPartSeg(**{**TINY, **over}), seed=seed).eval()


def ours(**over):
    return pcpeft.create_model("point_mae_partseg", **{**TINY, "drop_path_rate": 0.1, **over})


def cloud(seed=0, batch=2, n=256, near_origin=False):
    """(B, 3, N) in [-1, 1]^3; without near_origin no point lies within 0.1 of the origin (so the pointnet2_ops
    FPS rule for |p|^2 <= 1e-3 cannot matter); with it, a few points of each cloud lie within 0.02 of it."""
    pts = torch.rand(batch, n, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    norm = pts.norm(dim=-1, keepdim=True)
    pts = torch.where(norm < 0.1, pts / norm * 0.1, pts)
    if near_origin:
        pts[:, 5:9] *= 0.02 / pts[:, 5:9].norm(dim=-1, keepdim=True)
    return pts.transpose(1, 2).contiguous()


def save_official_finetuned(path, state):
    """The dict segmentation/main.py saves as best_model.pth (metrics are numpy floats there: np.mean)."""
    optimizer = {"state": {0: {"step": torch.tensor(30.0), "exp_avg": torch.zeros(4), "exp_avg_sq": torch.ones(4)}},
                 "param_groups": [{"lr": 2.5e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                                   "amsgrad": False, "params": [0]},
                                  {"lr": 2.5e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05,
                                   "amsgrad": False, "params": [1, 2]}]}
    torch.save({"epoch": 3, "train_acc": np.float64(0.9), "test_acc": np.float64(0.9),
                "class_avg_iou": np.float64(0.8), "inctance_avg_iou": np.float64(0.8),
                "model_state_dict": state, "optimizer_state_dict": optimizer}, path)
    return path


def loaded_model(tmp_path, ref, **over):
    model = ours(**over)
    report = load_checkpoint(model, save_official_finetuned(tmp_path / "best_model.pth", ref.state_dict()))
    return model.eval(), report


def test_full_size_matches_the_official_count_and_keys():
    ref = RefPartSeg()
    assert official_param_count(ref) == (OFFICIAL_PARAMS, OFFICIAL_STATE_ENTRIES) == (27_063_730, 192)
    model = pcpeft.create_model("point_mae_partseg", num_parts=50, num_categories=16, trans_dim=384, depth=12,
                                num_heads=6, num_group=128, group_size=32, fetch_layers=(3, 7, 11),
                                drop_path_rate=0.1)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS
    ours_sd, ref_sd = model.state_dict(), ref.state_dict()
    assert len(ours_sd) == OFFICIAL_STATE_ENTRIES
    assert set(ours_sd) == set(ref_sd), (sorted(set(ours_sd) ^ set(ref_sd)))
    assert {k: tuple(v.shape) for k, v in ours_sd.items()} == {k: tuple(v.shape) for k, v in ref_sd.items()}
    assert tuple(ours_sd["convs1.weight"].shape) == (512, 3392, 1)
    assert tuple(ours_sd["propagation_0.mlp_convs.0.weight"].shape) == (1536, 1155, 1)


def test_official_finetuned_file_gives_the_official_log_probs(tmp_path):
    ref = reference(seed=1)
    model, report = loaded_model(tmp_path, ref)
    assert report.ok, str(report)
    assert set(report.loaded) == set(model.state_dict()) == set(ref.state_dict()), str(report)
    assert not report.missing
    for key, value in ref.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    pts = cloud(seed=2)
    with torch.no_grad():
        expected = ref(pts, one_hot(CATEGORIES))
        official_form = model(pts, one_hot(CATEGORIES))  # (B, 3, N) + (B, 1, 16) one-hot
        pcpeft_form = model(pts.transpose(1, 2).contiguous(), CATEGORIES)  # (B, N, 3) + (B,) indices
    assert expected.shape == official_form.shape == pcpeft_form.shape == (2, 256, PARTS)
    assert torch.allclose(expected.exp().sum(-1), torch.ones(2, 256), atol=1e-5)
    assert expected.std() > 0.1  # not a degenerate (constant) output
    for got in (official_form, pcpeft_form):
        assert (got - expected).abs().max().item() < 1e-4
        assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_near_origin_rule_of_the_official_fps(tmp_path):
    """The official FPS (pointnet2_ops kernel) never picks |p|^2 <= 1e-3 after the first centre; pcpeft keeps that
    rule behind exclude_near_origin=True (off by default)."""
    ref = reference(seed=4)
    model, report = loaded_model(tmp_path, ref, exclude_near_origin=True)
    assert report.ok, str(report)
    pts = cloud(seed=5, near_origin=True)
    with torch.no_grad():
        expected = ref(pts, one_hot(CATEGORIES))
        got = model(pts, CATEGORIES)
    assert (got - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("prefix", ["", "module."])
def test_point_mae_pretrain_file_fills_the_encoder(tmp_path, prefix):
    ref = reference(seed=6)
    encoder = {f"MAE_encoder.{k}": v.clone() for k, v in ref.encoder_state_dict().items()}
    gen = torch.Generator().manual_seed(7)

    def made_up(*shape):
        return torch.randn(*shape, generator=gen)

    decoder = {"mask_token": made_up(1, 1, DIM), "decoder_pos_embed.0.weight": made_up(128, 3),
               "decoder_pos_embed.0.bias": made_up(128), "decoder_pos_embed.2.weight": made_up(DIM, 128),
               "decoder_pos_embed.2.bias": made_up(DIM), "MAE_decoder.norm.weight": made_up(DIM),
               "MAE_decoder.norm.bias": made_up(DIM), "increase_dim.0.weight": made_up(3 * M, DIM, 1),
               "increase_dim.0.bias": made_up(3 * M)}
    for name, shape in {"norm1.weight": (DIM,), "norm1.bias": (DIM,), "attn.qkv.weight": (3 * DIM, DIM),
                        "attn.proj.weight": (DIM, DIM), "attn.proj.bias": (DIM,), "norm2.weight": (DIM,),
                        "norm2.bias": (DIM,), "mlp.fc1.weight": (4 * DIM, DIM), "mlp.fc1.bias": (4 * DIM,),
                        "mlp.fc2.weight": (DIM, 4 * DIM), "mlp.fc2.bias": (DIM,)}.items():
        decoder[f"MAE_decoder.blocks.0.{name}"] = made_up(*shape)
    path = tmp_path / "pretrain.pth"
    torch.save({"base_model": {prefix + k: v for k, v in {**encoder, **decoder}.items()}, "optimizer": {},
                "epoch": 300, "metrics": {}, "best_metrics": {}}, path)

    model = ours()
    built = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_checkpoint(model, path)
    text = str(report)
    assert "point_mae" in report.layout and "pretrain" in report.layout and report.layout in text
    assert report.ok, text
    assert not report.missing and not report.unexpected and not report.shape_mismatches
    assert sorted(report.loaded) == sorted(k[len("MAE_encoder."):] for k in encoder)
    absent = {key for keys in report.expected_absent.values() for key in keys}
    assert set(decoder) <= absent, sorted(set(decoder) - absent)
    head = {k for k in model.state_dict() if k.startswith(HEAD)}
    assert len(head) == 6 + 14 + 6 + 10 and head <= absent, sorted(head - absent)
    state = model.state_dict()
    for key, value in encoder.items():
        assert torch.equal(state[key[len("MAE_encoder."):]], value), key
    for key in head:
        assert torch.equal(state[key], built[key]), key  # left as built


@pytest.mark.parametrize("other, named", [({"num_parts": 13}, "convs3.weight"),
                                          ({"trans_dim": 48, "num_heads": 4}, "pos_embed.2.weight"),
                                          ({"depth": 5, "fetch_layers": (2, 3, 4)}, "blocks.blocks.4.")])
def test_state_of_another_size_fails_naming_a_key(tmp_path, other, named):
    path = save_official_finetuned(tmp_path / "other.pth", RefPartSeg(**{**TINY, **other}).state_dict())
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        load_checkpoint(ours(), path, strict=True)
    report = load_checkpoint(ours(), path)  # lenient: reported, not ok
    assert not report.ok and named in str(report)


def test_backward_reaches_every_parameter(tmp_path):
    model, report = loaded_model(tmp_path, reference(seed=8))
    assert report.ok, str(report)
    model.train()
    torch.manual_seed(0)  # drop path / dropout draws
    target = torch.randint(0, PARTS, (2, 256), generator=torch.Generator().manual_seed(9))
    out = model(cloud(seed=10), CATEGORIES)
    F.nll_loss(out.reshape(-1, PARTS), target.reshape(-1)).backward()
    params = dict(model.named_parameters())
    assert len(params) == len([k for k in model.state_dict() if not k.endswith(("running_mean", "running_var",
                                                                                "num_batches_tracked"))])
    no_grad = sorted(name for name, p in params.items() if p.grad is None)
    assert not no_grad, no_grad
    bad = sorted(name for name, p in params.items() if not torch.isfinite(p.grad).all() or not p.grad.abs().sum())
    assert not bad, bad


def test_eval_gradients_equal_the_reference(tmp_path):
    ref = reference(seed=11)
    model, _ = loaded_model(tmp_path, ref)
    pts, target = cloud(seed=12), torch.randint(0, PARTS, (2, 256), generator=torch.Generator().manual_seed(13))
    for net, out in ((ref, ref(pts, one_hot(CATEGORIES))), (model, model(pts, CATEGORIES))):
        F.nll_loss(out.reshape(-1, PARTS), target.reshape(-1)).backward()
    theirs = dict(ref.named_parameters())
    for name, p in model.named_parameters():
        expected = theirs[name].grad
        scale = expected.abs().max().item() + 1e-12
        assert (p.grad - expected).abs().max().item() <= 1e-3 * scale + 1e-6, name
