import copy
import fnmatch

import pytest
import torch
import torch.nn.functional as F

import pcpeft
from pcpeft import CheckpointError, get_peft_model
from pcpeft.peft import PeftError, PeftModel, SSFConfig, available_methods
from pcpeft.peft.base import NEVER_TRAINED
from pcpeft.peft.ssf import SSFWrapper

BACKBONES = ["point_mae", "point_bert"]
METHODS = [m for m in available_methods() if m not in ("unfreeze", "prompt_generator")]


def small(name="point_mae", seed=0, **kw):
    torch.manual_seed(seed)
    opts = dict(num_classes=5, num_group=16, group_size=8, depth=3, drop_path_rate=0.0)
    opts.update(kw)
    return pcpeft.create_model(name, **opts)


def cloud(batch=4, n=256, seed=1):
    return torch.randn(batch, n, 3, generator=torch.Generator().manual_seed(seed))


def trainable_names(model):
    return {n[len("base_model."):] if n.startswith("base_model.") else n
            for n, p in model.named_parameters() if p.requires_grad}


def plain_names(backbone):
    return {n for n, _ in backbone.named_parameters()}


def expected_backbone_trainables(method, backbone):
    """Backbone (not added) parameters each method must train, from METHODS.md."""
    names = plain_names(backbone)
    head = {n for n in names if n.startswith("cls_head_finetune.")}
    if method == "full":
        return names
    if method == "linear":
        return head
    base = head | {"cls_token", "cls_pos"}
    if method == "bitfit":
        bias_or_norm = set()
        for mod_name, mod in backbone.named_modules():
            if isinstance(mod, torch.nn.LayerNorm):
                bias_or_norm |= {f"{mod_name}.weight", f"{mod_name}.bias"}
            elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv1d)) and mod.bias is not None:
                bias_or_norm.add(f"{mod_name}.bias")
        return base | bias_or_norm
    if method in ("adapter_x", "adapter_x_2d", "dapt_x"):
        return base | {n for n in names if fnmatch.fnmatch(n, "blocks.blocks.*.norm2.*")}
    if method in ("ppt", "pointlora"):  # their official runners also train the tokenizer's first conv stack and the
        # positional MLP (names with first_conv / pos_embed)
        return base | {n for n in names if n.startswith(("encoder.first_conv.", "pos_embed."))}
    return base


@pytest.mark.parametrize("backbone_name", BACKBONES)
@pytest.mark.parametrize("method", METHODS)
def test_exactly_the_intended_parameters_train_and_one_step_moves_only_them(method, backbone_name):
    backbone = small(backbone_name)
    plain = plain_names(backbone)
    expected = expected_backbone_trainables(method, backbone)
    model = get_peft_model(backbone, method)
    trainable = trainable_names(model)
    # backbone parameters (under their wrapped names too) that train are exactly the expected ones
    unwrap = lambda n: n.replace(".base.", ".")  # noqa: E731
    backbone_trainable = {unwrap(n) for n in trainable if unwrap(n) in plain}
    assert backbone_trainable == expected
    added = {n for n in trainable if unwrap(n) not in plain}
    if method not in ("full", "linear", "bitfit"):
        assert added, "the method added no trainable layers"
    # every added parameter trains
    # (IDPT's prompt_pos is added but never trained, as in the official optimiser)
    frozen_added = [n for n, p in model.named_parameters() if not p.requires_grad
                    and n.replace("base_model.", "").replace(".base.", ".") not in plain
                    and not getattr(p, NEVER_TRAINED, False)]
    assert frozen_added == []

    before = copy.deepcopy(model.state_dict())
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    loss = F.cross_entropy(model(cloud()), torch.tensor([0, 1, 2, 3])) + model.aux_loss()
    loss.backward()
    opt.step()
    after = model.state_dict()
    params = dict(model.named_parameters())
    for key, old in before.items():
        new = after[key]
        param = params.get(key)
        if param is not None and param.requires_grad:
            if param.grad is not None and param.grad.abs().sum() > 0:
                assert not torch.equal(old, new), f"{key} had a gradient but did not change"
        elif param is not None:
            assert torch.equal(old, new), f"frozen parameter {key} changed"
        elif key.startswith("base_model.encoder.") and method != "full" and not model.updates_frozen_bn_statistics:
            # (the official DAPT/IDPT/PPT/PointGST runners let frozen BatchNorms update their statistics)
            assert torch.equal(old, new), f"frozen tokenizer statistic {key} changed"


@pytest.mark.parametrize("backbone_name", BACKBONES)
def test_frozen_batchnorm_stays_in_eval_mode(backbone_name):
    model = get_peft_model(small(backbone_name), "adapter_x").train()
    assert not model.base_model.encoder.first_conv[1].training
    assert model.base_model.blocks.training
    if backbone_name == "point_mae":
        assert model.base_model.cls_head_finetune[1].training
    full = get_peft_model(small(backbone_name), "full").train()
    assert full.base_model.encoder.first_conv[1].training


@pytest.mark.parametrize("backbone_name", BACKBONES)
# dapt: pos_once=False too, since the official DAPT adds the positional embedding once, which changes the function
@pytest.mark.parametrize("spec", ["adapter", "smoa", "lora",
                                  {"method": "dapt", "ssf": False, "prompts": False, "pos_once": False}])
def test_zero_initialised_methods_leave_the_output_unchanged(spec, backbone_name):
    backbone = small(backbone_name).eval()
    x = cloud()
    with torch.no_grad():
        expected = backbone(x)
        got = get_peft_model(backbone, spec).eval()(x)
    assert torch.equal(got, expected)


def _randomise_added(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ssf_scale" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif "ssf_shift" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


@pytest.mark.parametrize("backbone_name", BACKBONES)
@pytest.mark.parametrize("method", ["ssf", "lora"])
def test_merge_and_unload_reproduces_outputs_with_the_plain_architecture(method, backbone_name):
    backbone = small(backbone_name, depth=4)
    reference = small(backbone_name, depth=4)  # same seed: the plain architecture to compare against
    with torch.no_grad():  # pretrained-like LayerNorms (non-zero biases), as merging must cope with them
        for mod in [*backbone.modules()]:
            if isinstance(mod, torch.nn.LayerNorm):
                mod.bias.normal_(0, 0.1)
    model = get_peft_model(backbone, method).eval()
    _randomise_added(model)
    x = cloud(seed=3)
    with torch.no_grad():
        unmerged = model(x)
        merged_model = model.merge_and_unload().eval()
        merged = merged_model(x)
    assert type(merged_model) is type(reference)
    assert not any(isinstance(m, SSFWrapper) or "LoRA" in type(m).__name__ for m in merged_model.modules())
    assert set(merged_model.state_dict()) == set(reference.state_dict())
    assert sum(p.numel() for p in merged_model.parameters()) == sum(p.numel() for p in reference.parameters())
    assert (unmerged - merged).abs().max() < 1e-5
    assert (unmerged - reference.eval()(x)).abs().max() > 1e-3  # the method did change the function


def test_ssf_qkv_shift_really_needs_the_bias_free_fold():
    """Guard the q/k/v shift fold: a non-trivial q shift must change outputs, and the merge must keep them."""
    backbone = small(depth=2)
    with torch.no_grad():
        for mod in backbone.modules():
            if isinstance(mod, torch.nn.LayerNorm):
                mod.bias.normal_(0, 0.1)
    model = get_peft_model(backbone, SSFConfig(sites=("attn.qkv",), tokenizer=False, final_norm=False)).eval()
    with torch.no_grad():
        for block in model.base_model.blocks.blocks:
            block.attn.qkv.ssf_scale.fill_(1.0)
            block.attn.qkv.ssf_shift.normal_(0, 0.5)
    x = cloud(seed=4)
    with torch.no_grad():
        before = model(x)
        merged = model.merge_and_unload().eval()
        assert merged.blocks.blocks[0].attn.qkv.bias is None
        assert (before - merged(x)).abs().max() < 1e-5


def test_non_mergeable_methods_refuse_with_a_reason():
    with pytest.raises(PeftError, match=r"\['smoa', 'prompt_generator'\].*input-dependent"):
        get_peft_model(small(), "adapter_x").merge_and_unload()


@pytest.mark.parametrize("backbone_name", BACKBONES)
@pytest.mark.parametrize("method", ["adapter_x", "ssf", "dapt", "vpt"])
def test_adapter_only_save_and_load_round_trip(tmp_path, method, backbone_name):
    pretrained = small(backbone_name, seed=7).state_dict()
    backbone = small(backbone_name, seed=1)
    backbone.load_state_dict(pretrained)
    model = get_peft_model(backbone, method).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        F.cross_entropy(model(cloud()), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    x = cloud(seed=9)
    with torch.no_grad():
        expected = model(x)
    model.save_pretrained(tmp_path / "adapter")
    saved = model.adapter_state_dict()
    assert not any(k.endswith("attn.qkv.weight") or k.endswith("attn.qkv.base.weight") for k in saved)
    if not model.updates_frozen_bn_statistics:  # DAPT (official) saves the statistics its runner updates
        assert not any(k.startswith("base_model.encoder.first_conv.1.running") for k in saved)
    assert sum(t.numel() for t in saved.values()) < 0.2 * sum(p.numel() for p in model.parameters())

    fresh = small(backbone_name, seed=2)  # different random init for every new layer and the head
    fresh.load_state_dict(pretrained)
    restored = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.equal(restored(x), expected)

    other = small(backbone_name, seed=2)
    other.load_state_dict(pretrained)
    with torch.no_grad():
        other.blocks.blocks[0].mlp.fc1.weight[0, 0] += 1e-3
    with pytest.raises(CheckpointError, match="frozen weights differ"):
        PeftModel.from_pretrained(other, tmp_path / "adapter")


def test_smoa_aux_loss_and_routing_are_exposed():
    model = get_peft_model(small(depth=3), "adapter_x").train()
    x = cloud(batch=2)
    logits = model(x)
    aux = model.aux_loss()
    assert aux.dim() == 0 and aux.item() > 0 and aux.requires_grad
    routing = model.routing()
    assert sorted(routing) == [0, 1, 2]
    for block, experts in routing.items():
        # block i sees cls + i prompts + 16 group tokens, split into 2 channel heads
        assert experts.shape == (2, 1 + block + 16, 2)
        assert experts.dtype == torch.int64 and experts.min() >= 0 and experts.max() < 8
    (F.cross_entropy(logits, torch.tensor([0, 1])) + aux).backward()
    assert model.peft_modules["smoa"].router.weight.grad.abs().sum() > 0
    assert get_peft_model(small(), "ssf").aux_loss().item() == 0


def test_smoa_is_shared_across_blocks():
    model = get_peft_model(small(depth=3), "smoa")
    pools = {id(b.mlp_branches[0].pool) for b in model.base_model.blocks.blocks}
    assert len(pools) == 1
    keys = [k for k in model.state_dict() if "down_weight" in k]
    assert keys == ["peft_modules.smoa.down_weight"]


def test_prompt_generator_adds_one_token_per_block():
    model = get_peft_model(small(depth=3), "adapter_x").eval()
    tokens = model.forward_features(cloud(batch=2))
    assert tokens.shape == (2, 1 + 3 + 16, 384)
    assert model.base_model.num_prefix_tokens == 4


@pytest.mark.parametrize("spec, message", [
    (["vpt", "adapter_x"], "conflict: both rewrite the prompt-token positions"),
    (["ssf", "lora"], "conflict: both rewrite linear layers"),
    (["full", "ssf"], "'full' fixes the whole set"),
    ("prompt_generator", "needs an adapter branch"),
    ("prompt_tuning", "unknown PEFT method or preset 'prompt_tuning'"),
    ({"method": "lora", "rnak": 4}, r"has no option\(s\) \['rnak'\]"),
])
def test_bad_combinations_are_refused_clearly(spec, message):
    with pytest.raises(PeftError, match=message):
        get_peft_model(small(), spec)


def test_print_trainable_parameters(capsys):
    model = get_peft_model(small(), "linear")
    line = model.print_trainable_parameters()
    trainable = sum(p.numel() for p in model.base_model.cls_head_finetune.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert line == f"trainable: {trainable:,} | total: {total:,} | {100 * trainable / total:.4f}%"
    assert capsys.readouterr().out.strip() == line


def test_adapter_x_budget_on_point_mae_scanobjectnn():
    """The documented number: Adapter-X on Point-MAE, 15 classes, 128 groups (head counted as trainable)."""
    model = get_peft_model(pcpeft.create_model("point_mae", num_classes=15, num_group=128), "adapter_x")
    trainable, total = model.trainable_parameters()
    assert (trainable, total) == (417_903, 22_233_711)
    assert 1.85 < 100 * trainable / total < 1.91


def test_adapter_restores_onto_a_fresh_backbone_loaded_from_a_pretraining_file(tmp_path):
    """Point-MAE pre-training files carry no cls_pos: it must train (and be saved), not stay a random init."""
    source = small(seed=11).state_dict()
    pre = {f"MAE_encoder.{k}": v for k, v in source.items() if not k.startswith(("cls_", "cls_head"))}
    torch.save({"base_model": pre}, tmp_path / "pretrain.pth")
    first = small(seed=1)
    pcpeft.load_checkpoint(first, tmp_path / "pretrain.pth", strict=True)
    model = get_peft_model(first, "adapter_x").eval()
    x = cloud(seed=2)
    with torch.no_grad():
        expected = model(x)
    model.save_pretrained(tmp_path / "ad")
    second = small(seed=2)  # another random cls_pos / head / cls token
    pcpeft.load_checkpoint(second, tmp_path / "pretrain.pth", strict=True)
    with torch.no_grad():
        assert torch.equal(PeftModel.from_pretrained(second, tmp_path / "ad").eval()(x), expected)
