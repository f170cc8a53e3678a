"""DAPT, IDPT, PPT and PointGST against independent restatements of their official code (tests/references/methods.py),
fed from official-layout files; trainable counts of the official optimisers; the converter's round trip."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import pcpeft
from pcpeft import get_peft_model
from pcpeft.peft import PeftModel
from pcpeft.peft.graph_basis import official_basis, stable_basis
from tests.references.methods import RefDAPT, RefIDPT, RefPointGST, RefPPT, randomise_official

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(num_classes=5, num_group=32, group_size=8, depth=3, trans_dim=96, encoder_dims=96, num_heads=6,
             drop_path_rate=0.0)
REFERENCES = {
    "dapt": (lambda: RefDAPT(5, 32, 8, depth=3, dim=96), {"method": "dapt"}),
    "idpt": (lambda: RefIDPT(5, 32, 8, depth=3, dim=96, prompt_layer=2), {"method": "idpt"}),
    "ppt": (lambda: RefPPT(5, 32, 8, depth=3, dim=96), {"method": "ppt"}),
    "pointgst": (lambda: RefPointGST(5, 32, 8, depth=3, dim=96, local=8), {"method": "pointgst", "local": 8}),
}
TOLERANCE = {"dapt": 1e-4, "idpt": 1e-4, "ppt": 1e-4, "pointgst": 2e-3}


def cloud(batch=3, n=256, seed=1):
    return torch.randn(batch, n, 3, generator=torch.Generator().manual_seed(seed))


def official_file(tmp_path, method, module_prefix=True, seed=0):
    torch.manual_seed(seed)
    reference = randomise_official(REFERENCES[method][0](), seed).eval()
    state = reference.state_dict()
    prefix = "module." if module_prefix else ""
    path = tmp_path / f"{method}-official.pth"
    torch.save({"base_model": {prefix + k: v for k, v in state.items()}, "epoch": 7,
                "metrics": {"acc": 91.0}, "best_metrics": {"acc": 91.0}}, path)
    return reference, path


def pcpeft_model(method, seed=5):
    torch.manual_seed(seed)
    return get_peft_model(pcpeft.create_model("point_mae", **SMALL), REFERENCES[method][1])


@pytest.mark.parametrize("module_prefix", [True, False])
@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_official_file_loads_strictly_and_gives_the_official_logits(tmp_path, method, module_prefix):
    reference, path = official_file(tmp_path, method, module_prefix)
    model = pcpeft_model(method)
    report = pcpeft.load_checkpoint(model, path, strict=True)
    assert report.ok and report.layout == f"{method}_official"
    x = cloud()
    with torch.no_grad():
        expected = reference(x)
        got = model.eval()(x)
    assert (got - expected).abs().max() < TOLERANCE[method], (got - expected).abs().max()
    assert expected.abs().max() > 0.1  # the logits are not trivially small


def test_idpt_keeps_the_convn1_copy_of_its_twice_registered_batchnorms(tmp_path):
    """The official file holds bnN.* and convN.1.* (one module); the official strict load leaves convN.1 in it."""
    reference, path = official_file(tmp_path, "idpt")
    raw = torch.load(path)
    assert {"module.blocks.cls.bn1.weight", "module.blocks.cls.conv1.1.weight"} <= set(raw["base_model"])
    assert len(raw["base_model"]) == len(reference.state_dict())
    for key in list(raw["base_model"]):  # make the first-registered copy differ: it must be the one ignored
        if ".blocks.cls.bn" in key and raw["base_model"][key].is_floating_point():
            raw["base_model"][key] = raw["base_model"][key] + 5.0
    torch.save(raw, path)
    model = pcpeft_model("idpt")
    report = pcpeft.load_checkpoint(model, path, strict=True)
    assert len(next(iter(report.expected_absent.values()))) == 4 * 5  # weight, bias, mean, var, count x 4 BNs
    x = cloud()
    with torch.no_grad():
        assert (model.eval()(x) - reference(x)).abs().max() < 1e-4


def test_idpt_prompt_pos_is_saved_but_never_trained():
    model = pcpeft_model("idpt")
    prompt_pos = model.peft_modules["idpt"].prompt_pos
    assert not prompt_pos.requires_grad
    assert "peft_modules.idpt.prompt_pos" in model.adapter_state_dict()


def test_ppt_positional_prompts_equal_the_patch_tokens():
    """With the two token MLPs silenced, block 0 sees prompts (with positions) identical to the patch tokens."""
    model = pcpeft_model("ppt").eval()
    hook = model.peft_modules["ppt"]
    with torch.no_grad():
        for mlp in (hook.prompt_mlp, hook.prompt_pos_mlp):
            mlp[2].weight.zero_()
            mlp[2].bias.zero_()
    seen = {}
    original = hook.before_block

    def spy(index, x, pos):
        out = original(index, x, pos)
        if index == 0:
            seen["input"], seen["block0"] = x, out[0]
        return out

    hook.before_block = spy
    with torch.no_grad():
        tokens = model.forward_features(cloud())
    assert tokens.shape[1] == 1 + 2 * 32 and seen["input"].shape[1] == 1 + 32
    block0 = seen["block0"]
    assert torch.equal(block0[:, 1:33], block0[:, 33:])
    assert not torch.equal(block0[:, 1:33], seen["input"][:, 1:])  # the positions were added to both halves


def test_pointgst_multiplies_by_u_not_its_transpose(tmp_path):
    """Swapping U for Uᵀ in the restatement changes the logits far beyond the tolerance."""
    reference, path = official_file(tmp_path, "pointgst")
    model = pcpeft_model("pointgst")
    pcpeft.load_checkpoint(model, path, strict=True)
    x = cloud()
    from tests.references import methods as refs
    with torch.no_grad():
        right = model.eval()(x)
        original = refs.spectral_basis
        refs.spectral_basis = lambda c: original(c).transpose(-2, -1)
        try:
            transposed = reference(x)
        finally:
            refs.spectral_basis = original
    assert (right - transposed).abs().max() > 1e-2


def test_pointgst_official_basis_is_ill_conditioned_and_the_stable_one_is_not():
    centres = torch.randn(2, 64, 3, generator=torch.Generator().manual_seed(3))
    official = official_basis(centres)
    distance = torch.cdist(centres, centres)
    true_smallest = (distance + torch.eye(64) * 1e9).min()
    assert distance[distance > 0].min() < 1e-2 * true_smallest  # the normaliser is the diagonal's rounding noise
    stable = stable_basis(centres)
    again = stable_basis(centres.flip(0)).flip(0)  # another batch split gives the same per-cloud basis
    assert torch.allclose(stable, again, atol=1e-5)
    assert torch.allclose(official.transpose(-2, -1) @ official, torch.eye(64).expand(2, -1, -1), atol=1e-4)
    model = get_peft_model(pcpeft.create_model("point_mae", **SMALL), {"method": "pointgst", "local": 8,
                                                                        "basis": "stable"})
    assert model(cloud()).shape == (3, 5)


COUNTS = {"dapt": 1_087_771, "idpt": 1_696_783, "ppt": 1_042_191, "pointgst": 622_831}
#: the 2025 methods (their own test files, tests/peft/, check them against restatements of the official code):
#: GAPrompt and PointLoRA on Point-MAE, MoST on PointGPT-L, 15 classes, 128 groups
NEWEST_COUNTS = {"gaprompt": 628_147, "pointlora": 772_752, "most": 8_142_095}


@pytest.mark.parametrize("method", sorted(COUNTS))
def test_trainable_counts_equal_the_official_optimisers(method):
    model = get_peft_model(pcpeft.create_model("point_mae", num_classes=15, num_group=128), method)
    assert model.trainable_parameters()[0] == COUNTS[method]


@pytest.mark.parametrize("backbone", ["point_bert", "vit_tiny_patch16_224"])
@pytest.mark.parametrize("method", sorted(COUNTS))
def test_the_methods_run_and_train_on_the_other_backbones(method, backbone):
    torch.manual_seed(0)
    if backbone == "point_bert":
        net = pcpeft.create_model("point_bert", num_classes=5, num_group=32, group_size=8, depth=2)
        x = cloud(batch=2)
    else:
        net = pcpeft.create_model(backbone, num_classes=5, img_size=64, depth=2)
        x = torch.randn(2, 3, 64, 64)
    model = get_peft_model(net, method).train()
    loss = F.cross_entropy(model(x), torch.tensor([0, 1]))
    loss.backward()
    head = net.classifier_name
    method_params = {n: p for n, p in model.named_parameters() if p.requires_grad
                     and not n.startswith((f"base_model.{head}.", "base_model.cls_"))}
    assert method_params, "the method trains nothing of its own"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method_params.values())


@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_converter_round_trip_is_bit_exact(tmp_path, method):
    from pcpeft.peft.convert import adapter_to_official, official_to_adapter

    reference, path = official_file(tmp_path, method)
    pretrained = _pretraining_file(tmp_path, reference)
    spec = REFERENCES[method][1]
    if method == "idpt":  # once through the command line tool
        options = [f"--model-options={json.dumps(SMALL)}", f"--peft={json.dumps(spec)}"]
        tool = [sys.executable, str(ROOT / "tools" / "convert_checkpoint.py")]
        subprocess.run([*tool, "to-pcpeft", str(path), "--out_dir", str(tmp_path / "adapter"), *options], check=True,
                       cwd=ROOT)
        subprocess.run([*tool, "to-official", str(tmp_path / "adapter"), "--out", str(tmp_path / "back.pth"),
                        f"--ckpts={pretrained}", options[0]], check=True, cwd=ROOT)  # the folder names the method
    else:
        official_to_adapter(path, tmp_path / "adapter", spec, model_options=SMALL)
        adapter_to_official(tmp_path / "adapter", tmp_path / "back.pth", pretrained, model_options=SMALL)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size < 0.6 * path.stat().st_size
    original, back = torch.load(path), torch.load(tmp_path / "back.pth")
    assert list(back["base_model"]) == list(original["base_model"])
    for key, value in original["base_model"].items():
        assert back["base_model"][key].dtype == value.dtype and torch.equal(back["base_model"][key], value), key
    assert (back["epoch"], back["metrics"]) == (original["epoch"], original["metrics"])
    restored = PeftModel.from_pretrained(_small_backbone(pretrained), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert (restored(cloud()) - reference(cloud())).abs().max() < TOLERANCE[method]


def _pretraining_file(tmp_path, reference):
    """The frozen backbone the method started from, in Point-MAE's pre-training layout."""
    frozen = {f"MAE_encoder.{k}": v for k, v in reference.state_dict().items()
              if k.startswith(("encoder.", "pos_embed.", "norm.", "blocks.blocks.")) and "tfts" not in k
              and "Adapter" not in k and "gft_adapter" not in k}
    torch.save({"base_model": frozen}, tmp_path / "pretrain.pth")
    return tmp_path / "pretrain.pth"


def _small_backbone(pretrained):
    backbone = pcpeft.create_model("point_mae", **SMALL)
    pcpeft.load_checkpoint(backbone, pretrained)
    return backbone



def test_recipes_validate_and_name_their_official_file():
    from pcpeft.engine.recipe.schema import validate_recipe
    from pcpeft.engine.recipe.yaml_io import load_config

    recipes = sorted((ROOT / "cfgs" / "methods").glob("*.yaml"))
    for method in COUNTS:
        for split in ("scan_objbg", "scan_objonly", "scan_hardest", "modelnet"):
            assert ROOT / "cfgs" / "methods" / f"{method}_{split}.yaml" in recipes
    for path in recipes:
        head = " ".join(path.read_text().splitlines()[:2])
        assert "official" in head and "cfgs/" in head and head.startswith("#"), path
        settings = validate_recipe(load_config(path), str(path))
        assert settings.peft["method"] in {*COUNTS, *NEWEST_COUNTS}
    objbg = validate_recipe(load_config(ROOT / "cfgs/methods/idpt_scan_objbg.yaml"))
    assert objbg.peft["head_input"] == "promptonly"


def test_adapter_x_2d_lands_at_the_papers_2d_budget():
    with torch.device("meta"):
        model = get_peft_model(pcpeft.create_model("vit_base_patch16_224", num_classes=0), "adapter_x_2d")
    trainable = model.trainable_parameters()[0]
    assert sum(p.numel() for p in model.base_model.parameters()) == 85_798_656
    assert trainable == 168_800 and 0.18 < 100 * trainable / 85_798_656 < 0.22


def test_peft_table_prints_the_official_counts():
    from pcpeft.peft.table import format_markdown, trainable_table

    rows = {r["method"]: r for r in trainable_table("point_mae", device="meta", num_classes=15, num_group=128)}
    for method, count in COUNTS.items():
        assert rows[method]["official"] == count == rows[method]["trainable"]
    for method in ("gaprompt", "pointlora"):
        assert rows[method]["official"] == NEWEST_COUNTS[method] == rows[method]["trainable"]
    assert "| dapt | 1,087,771 | 1,087,771 |" in format_markdown(list(rows.values()))
    large = {r["method"]: r for r in trainable_table("pointgpt_l", device="meta", num_classes=15, num_group=128)}
    assert large["most"]["official"] == NEWEST_COUNTS["most"] == large["most"]["trainable"]


@pytest.mark.parametrize("method", sorted(REFERENCES))
def test_a_pcpeft_adapter_converts_to_a_file_the_official_model_loads_strictly(tmp_path, method):
    from pcpeft.peft.convert import adapter_to_official

    torch.manual_seed(3)
    pretrained = pcpeft.create_model("point_mae", **SMALL).state_dict()
    torch.save({"base_model": {f"MAE_encoder.{k}": v for k, v in pretrained.items()
                               if not k.startswith(("cls_", "cls_head"))}}, tmp_path / "pretrain.pth")
    model = get_peft_model(_small_backbone(tmp_path / "pretrain.pth"), REFERENCES[method][1])
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():  # a "trained" adapter: every trainable tensor moved
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn(param.shape, generator=gen))
    model.eval().save_pretrained(tmp_path / "adapter")
    out = adapter_to_official(tmp_path / "adapter", tmp_path / "official.pth", tmp_path / "pretrain.pth",
                              model_options=SMALL, module_prefix=True)
    reference = REFERENCES[method][0]().eval()
    state = torch.load(out)["base_model"]
    reference.load_state_dict({k[len("module."):]: v for k, v in state.items()}, strict=True)  # official load_model
    x = cloud()
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() < TOLERANCE[method]
