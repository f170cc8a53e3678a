"""Every PEFT method and preset of ``pcpeft.peft.available_methods()`` on every new backbone (tiny sizes): forward
and backward run and reach what the method trains; SSF and LoRA merge exactly; prompt tokens respect PointGPT's
causal mask (they sit before the cls token, which sees them)."""
import pytest
import torch
import torch.nn.functional as F

import pcpeft
from pcpeft.peft import PeftError, available_methods, get_peft_model
from tests.references.backbones import one_thread  # noqa: F401  (autouse fixture)

TINY = {"num_classes": 5, "num_group": 8, "group_size": 8, "trans_dim": 48, "depth": 2, "num_heads": 4}
#: act keeps depth 12 so that methods keyed to a block index (IDPT: block 11) run with their defaults
BACKBONES = {"pointgpt_s": {"decoder_depth": 1}, "pointgpt_b": {"decoder_depth": 1},
             "recon": {"encoder_dims": 48}, "act": {"encoder_dims": 48, "depth": 12}}
#: method -> the layer-free helper it needs before it
NEEDS = {"prompt_generator": ["smoa"]}
#: pairs the method's own code refuses (pcpeft/peft, with a PeftError naming why); they must keep refusing cleanly
#: or run correctly
REFUSED = {("idpt", "pointgpt_s"), ("idpt", "pointgpt_b"), ("idpt", "recon"), ("ppt", "recon"),
           ("pointgst", "recon"), ("most", "recon"), ("pointlora", "recon")}


def build(name: str):
    return pcpeft.create_model(name, **{**TINY, **BACKBONES[name]})


def cloud(seed: int = 0, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 64, 3, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(BACKBONES))
@pytest.mark.parametrize("method", available_methods())
def test_method_runs_forward_and_backward(method, name):
    torch.manual_seed(0)
    try:
        model = get_peft_model(build(name), [*NEEDS.get(method, []), method])
    except PeftError:
        if (method, name) in REFUSED:
            return
        raise
    model.train()
    logits = model(cloud())
    assert logits.shape == (2, 5)
    loss = F.cross_entropy(logits, torch.tensor([0, 3])) + model.aux_loss()
    loss.backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in trainable.values())
    reached = {n for n, p in trainable.items() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any("cls_head_finetune" in n for n in reached)
    added = {n for n in trainable if n.startswith("peft_modules.") or ".base." in n or "lora_" in n
             or "ssf_" in n or "mlp_branches" in n or "gft_adapter" in n}
    if added:  # some added layer learns at step one (zero-initialised up-projections hold back the rest)
        assert added & reached, (method, name, sorted(added)[:5])


@pytest.mark.parametrize("name", list(BACKBONES))
@pytest.mark.parametrize("method", ["ssf", "lora"])
def test_merge_is_exact(method, name):
    torch.manual_seed(1)
    model = get_peft_model(build(name), method)
    with torch.no_grad():  # move the layers away from their (near-)identity init
        moved = [p for n, p in model.named_parameters() if "ssf_" in n or "lora_" in n]
        assert moved
        for param in moved:
            param.add_(torch.randn_like(param) * 0.05)
    model.eval()
    pts = cloud(2)
    with torch.no_grad():
        before = model(pts)
        merged = model.merge_and_unload().eval()
        after = merged(pts)
    assert not any(getattr(m, "is_peft_layer", False) for m in merged.modules())
    torch.testing.assert_close(after, before, atol=1e-4, rtol=0)


def probe(tokens: torch.Tensor) -> torch.Tensor:
    """A fixed random read-out of (B, D) outputs (a plain sum of LayerNorm outputs has zero gradient)."""
    return (tokens * torch.randn(tokens.shape[-1], generator=torch.Generator().manual_seed(9))).sum()


def test_pointgpt_prompts_sit_before_cls_and_are_seen_by_it():
    torch.manual_seed(0)
    model = get_peft_model(build("pointgpt_s"), {"method": "vpt", "num_prompts": 3}).eval()
    base, hook = model.base_model, model.peft_modules["vpt"]
    tokens = base.forward_features(cloud(3, batch=2))
    prefix = base.num_prefix_tokens
    assert prefix == 2 + 3 and tokens.shape[1] == prefix + TINY["num_group"]
    # the cls slot (just before the patches) depends on the prompts ...
    cls_out = probe(tokens[:, prefix - 1])
    (grad_prompts,) = torch.autograd.grad(cls_out, hook.prompts, retain_graph=True)
    assert grad_prompts[0].abs().sum() > 0
    # ... while the prompts' outputs never see the cls token (causal: they come before it)
    prompt_out = probe(tokens[:, 1:prefix - 1])
    (grad_cls,) = torch.autograd.grad(prompt_out, base.cls_token, retain_graph=True)
    assert float(grad_cls.abs().sum()) == 0.0
    # and the sos slot sees nothing after it
    (grad_sos_prompts,) = torch.autograd.grad(probe(tokens[:, 0]), hook.prompts)
    assert float(grad_sos_prompts.abs().sum()) == 0.0


def test_recon_prompts_join_the_patch_branch_and_the_head_still_reads_cls_img_text():
    torch.manual_seed(0)
    model = get_peft_model(build("recon"), {"method": "vpt", "num_prompts": 2}).eval()
    base = model.base_model
    pts = cloud(4, batch=2)
    tokens = base.forward_features(pts)
    assert base.num_prefix_tokens == 3 + 2
    img_out = probe(tokens[:, 1 + 2])  # [cls, p1, p2, img, text, patches]: img cross-attends the prompts
    (grad,) = torch.autograd.grad(img_out, model.peft_modules["vpt"].prompts)
    assert grad[0].abs().sum() > 0
    assert model.forward_head(tokens, pre_logits=True).shape == (2, 4 * TINY["trans_dim"])
