"""Official repositories' recipe files (Point-MAE, DAPT, PointGPT, ...) translated into pcpeft recipes.

The official files are re-typed here in their dialect (flow mappings, ``lr : 0.0005``, quoted subsets, the
``_base_`` paths as the repositories write them) with the keys and values of LMD0311/DAPT ``cfgs/*_dapt.yaml``,
Pang-Yatian/Point-MAE ``cfgs/finetune_*.yaml`` and CGuangyan-BIT/PointGPT ``cfgs/PointGPT-S/finetune_*.yaml``,
written into ``tmp_path`` at the place they have in their checkout, and translated. Each translation must hold the
settings of the pcpeft recipe shipped for the same row and name it in ``matches``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pcpeft.engine.recipe.official import (
    Translation,
    is_official_recipe,
    shipped_differences,
    translate_official_recipe,
)
from pcpeft.engine.recipe.schema import validate_recipe
from pcpeft.engine.recipe.shipped import RECIPES_DIR, resolve_recipe, shipped_recipes
from pcpeft.engine.recipe.yaml_io import ConfigError, load_config
from pcpeft.peft import resolve_configs

# -- the official files, re-typed ------------------------------------------------------------------------------
BASES = {"objbg": "cfgs/dataset_configs/ScanObjectNN_objectbg.yaml",
         "objonly": "cfgs/dataset_configs/ScanObjectNN_objectonly.yaml",
         "hardest": "cfgs/dataset_configs/ScanObjectNN_hardest.yaml",
         "modelnet": "cfgs/dataset_configs/ModelNet40.yaml"}
#: (classes, groups, points) of each row
ROWS = {"objbg": (15, 128, 2048), "objonly": (15, 128, 2048), "hardest": (15, 128, 2048), "modelnet": (40, 64, 1024)}
#: official file name of each row
FILE_ROW = {"objbg": "scan_objbg", "objonly": "scan_objonly", "hardest": "scan_hardest", "modelnet": "modelnet"}


def _dataset_block(base: str) -> str:
    return (f"dataset : {{\n"
            f"  train : {{ _base_: {base},\n            others: {{subset: 'train'}}}},\n"
            f"  val : {{ _base_: {base},\n            others: {{subset: 'test'}}}},\n"
            f"  test : {{ _base_: {base},\n            others: {{subset: 'test'}}}}}}\n")


def _schedule_block(lr: str, epochs: int, warmup: int, part: str | None = None) -> str:
    part_line = f"  part: {part},\n" if part else ""
    return (f"optimizer : {{\n  type: AdamW,\n{part_line}  kwargs: {{\n  lr : {lr},\n"
            f"  weight_decay : 0.05\n}}}}\n\n"
            f"scheduler: {{\n  type: CosLR,\n  kwargs: {{\n    epochs: {epochs},\n"
            f"    initial_epochs : {warmup}\n}}}}\n\n")


def _tail(npoints: int, total_bs: int) -> str:
    return (f"\n\nnpoints: {npoints}\ntotal_bs : {total_bs}\nstep_per_update : 1\nmax_epoch : 300\n"
            f"grad_norm_clip : 10\n")


def _model_block(name: str, classes: int, groups: int, drop_path: str, extra: str = "") -> str:
    return (f"model : {{\n  NAME: {name},\n  trans_dim: 384,\n  depth: 12,\n  drop_path_rate: {drop_path},\n"
            f"  cls_dim: {classes},\n  num_heads: 6,\n  group_size: 32,\n  num_group: {groups},\n"
            f"  encoder_dims: 384,\n{extra}}}")


def point_mae_text(row: str) -> str:
    """Pang-Yatian/Point-MAE cfgs/finetune_<row>.yaml."""
    classes, groups, points = ROWS[row]
    return (_schedule_block("0.0005", 300, 10) + _dataset_block(BASES[row])
            + _model_block("PointTransformer", classes, groups, "0.1") + _tail(points, 32))


#: DAPT per row: drop_path_rate, drop_adapter_rate, rank, prompt_token, patch_token
DAPT_ROWS = {"objbg": ("0.3", "0.5", 64, '"mean"', '"max"'), "objonly": ("0.1", "0", 64, '"mean"', '"None"'),
             "hardest": ("0.3", "0.2", 64, '"mean"', '"max"'), "modelnet": ("0.1", "0", 72, '"None"', '"max"')}


def dapt_text(row: str) -> str:
    """LMD0311/DAPT cfgs/finetune_<row>_dapt.yaml."""
    classes, groups, points = ROWS[row]
    drop_path, drop_adapter, rank, prompt, patch = DAPT_ROWS[row]
    extra = (f"  drop_rate: 0.,\n  drop_adapter_rate: {drop_adapter},\n  rank: {rank},\n  class_token: \"use\",\n"
             f"  prompt_token: {prompt},\n  patch_token: {patch},\n")
    return (_schedule_block("0.0005", 300, 10, part="dapt") + _dataset_block(BASES[row])
            + _model_block("PointTransformer_DAPT", classes, groups, drop_path, extra) + _tail(points, 32))


#: PointGPT-S per row: lr, initial_epochs, total_bs
POINTGPT_S_ROWS = {"objbg": ("0.0005", 10, 32), "objonly": ("0.0005", 10, 32), "hardest": ("0.0001", 30, 64),
                   "modelnet": ("0.0001", 10, 128)}


def pointgpt_s_text(row: str, decoder_depth: bool = True) -> str:
    """CGuangyan-BIT/PointGPT cfgs/PointGPT-S/finetune_<row>.yaml (``decoder_depth=False`` drops that key)."""
    classes, groups, points = ROWS[row]
    lr, warmup, total_bs = POINTGPT_S_ROWS[row]
    extra = "  decoder_depth: 4,\n" if decoder_depth else ""
    if row == "modelnet":
        extra += "  loss: cdl2,\n  weight_center: 1,\n"
    return (_schedule_block(lr, 300, warmup) + _dataset_block(BASES[row])
            + _model_block("PointTransformer", classes, groups, "0.1", extra) + _tail(points, total_bs))


#: (folder under tmp_path, file name, text maker, shipped recipe) per repository and row
REPOSITORIES = {
    "Point-MAE": ("Point-MAE/cfgs", "finetune_{row}.yaml", point_mae_text, "finetune_{row}"),
    "DAPT": ("DAPT/cfgs", "finetune_{row}_dapt.yaml", dapt_text, "methods/dapt_{row}"),
    "PointGPT-S": ("PointGPT/cfgs/PointGPT-S", "finetune_{row}.yaml", pointgpt_s_text, "pointgpt_s/finetune_{row}"),
}
CASES = [(repo, row) for repo in REPOSITORIES for row in ROWS]

#: where a shipped recipe deliberately differs from the official file, per repository: PointGPT's files set
#: drop_path_rate 0.1, which the official PointGPT model never uses and pcpeft's pointgpt models do not have
#: (cfgs/models/pointgpt_s.yaml); neither model section holds it. No other row differs.
DELIBERATE = {"PointGPT-S": {"model.drop_path_rate": "not in either model section (unused by the official model)"}}


def write_official(tmp_path: Path, repo: str, row: str, text: str | None = None) -> Path:
    """Write ``repo``'s official file of ``row`` where its checkout has it; returns its path."""
    folder, name, make, _ = REPOSITORIES[repo]
    path = tmp_path / folder / name.format(row=FILE_ROW[row])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make(row) if text is None else text)
    return path


def shipped_name(repo: str, row: str) -> str:
    """The pcpeft recipe shipped for ``repo``'s ``row``."""
    return REPOSITORIES[repo][3].format(row=FILE_ROW[row])


# -- the rows ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("repo,row", CASES)
def test_official_file_translates_to_the_shipped_recipe(tmp_path, repo, row):
    path = write_official(tmp_path, repo, row)
    raw = yaml.safe_load(path.read_text())
    assert is_official_recipe(raw)
    translation = translate_official_recipe(path)
    name = shipped_name(repo, row)
    assert name in shipped_recipes(), f"no shipped recipe {name} for {repo} {row}"
    ours = validate_recipe(translation.recipe, "translated")
    shipped = validate_recipe(load_config(resolve_recipe(name)), name)

    assert ours.model == shipped.model
    assert ours.dataset.model_dump() == shipped.dataset.model_dump()
    assert ours.optimizer.model_dump() == shipped.optimizer.model_dump()
    assert ours.scheduler.model_dump() == shipped.scheduler.model_dump()
    assert ours.train.batch_size == shipped.train.batch_size
    assert ours.train.grad_clip == shipped.train.grad_clip
    assert ours.peft == shipped.peft
    assert translation.matches == name
    assert shipped_differences(translation, name) == []
    assert translation.unmapped == []
    if "model.drop_path_rate" in DELIBERATE.get(repo, {}):
        assert "drop_path_rate" not in ours.model and "drop_path_rate" not in shipped.model
        assert any(d.startswith("model.drop_path_rate 0.1: ignored") for d in translation.decisions)


def test_the_rows_pick_the_backbone_and_method_they_mean(tmp_path):
    dapt = translate_official_recipe(write_official(tmp_path, "DAPT", "objonly"))
    assert dapt.recipe["model"]["name"] == "point_mae"
    assert dapt.recipe["peft"] == {"method": "dapt", "rank": 64, "adapter_dropout": 0.0, "prompt_token": "mean",
                                   "patch_token": "none"}
    gpt = translate_official_recipe(write_official(tmp_path, "PointGPT-S", "modelnet"))
    assert gpt.recipe["model"]["name"] == "pointgpt_s" and gpt.recipe["model"]["tokenizer"] == "small"
    assert "peft" not in gpt.recipe
    assert any(d.startswith("model.loss 'cdl2': ignored") for d in gpt.decisions)
    mae = translate_official_recipe(write_official(tmp_path, "Point-MAE", "hardest"))
    assert mae.recipe["model"]["name"] == "point_mae" and "peft" not in mae.recipe
    assert mae.recipe["dataset"]["split"] == "PB_T50_RS"


# -- every key accounted for ------------------------------------------------------------------------------------
def test_an_unknown_key_is_reported_with_its_name(tmp_path):
    text = point_mae_text("hardest").replace("  encoder_dims: 384,\n", "  encoder_dims: 384,\n  xyz: 3,\n")
    text += "my_switch: true\n"
    translation = translate_official_recipe(write_official(tmp_path, "Point-MAE", "hardest", text))
    assert any(entry.startswith("model.xyz: 3") for entry in translation.unmapped), translation.unmapped
    assert any(entry.startswith("my_switch: True") for entry in translation.unmapped), translation.unmapped
    assert "xyz" not in translation.recipe["model"]
    assert translation.matches == "finetune_scan_hardest"  # the keys it could map are the shipped row's


def test_keys_pcpeft_cannot_reproduce_are_unmapped(tmp_path):
    text = point_mae_text("hardest").replace("step_per_update : 1", "step_per_update : 2")
    text = text.replace("weight_decay : 0.05", "weight_decay : 0.05,\n  betas: [0.9, 0.99]")
    translation = translate_official_recipe(write_official(tmp_path, "Point-MAE", "hardest", text))
    keys = [entry.split(":")[0] for entry in translation.unmapped]
    assert "step_per_update" in keys and "optimizer.kwargs.betas" in keys
    # matches compares the translated settings; what neither recipe reproduces is in unmapped
    assert translation.matches == "finetune_scan_hardest"


def test_schedule_lengths_and_missing_clip(tmp_path):
    text = point_mae_text("objbg").replace("max_epoch : 300", "max_epoch : 350").replace("grad_norm_clip : 10\n", "")
    translation = translate_official_recipe(write_official(tmp_path, "Point-MAE", "objbg", text))
    assert translation.recipe["scheduler"]["epochs"] == 350
    assert translation.recipe["scheduler"]["cosine_epochs"] == 300  # CosLR epochs; later epochs at the floor
    assert translation.recipe["train"]["grad_clip"] is None  # the official runner clips only when the key is set


# -- recognising ------------------------------------------------------------------------------------------------
def test_pcpeft_recipes_are_not_official():
    for name in shipped_recipes():
        path = RECIPES_DIR / f"{name}.yaml"
        assert not is_official_recipe(load_config(path)), name
        assert not is_official_recipe(yaml.safe_load(path.read_text()) or {}), name
    with pytest.raises(ConfigError, match="not an official repository's recipe"):
        translate_official_recipe(resolve_recipe("finetune_scan_hardest"))


def test_official_markers_are_recognised():
    assert is_official_recipe({"model": {"NAME": "PointTransformer"}})
    assert is_official_recipe({"dataset": {"train": {"_base_": "cfgs/dataset_configs/ModelNet40.yaml"}}})
    assert is_official_recipe({"total_bs": 32})
    assert not is_official_recipe({"model": {"name": "point_mae"}, "dataset": {"name": "ModelNet40"}})
    assert not is_official_recipe([1, 2])


# -- ambiguity: Point-MAE's and PointGPT-S's PointTransformer ---------------------------------------------------
def test_an_ambiguous_name_is_decided_by_the_files_place(tmp_path):
    text = pointgpt_s_text("objbg", decoder_depth=False)  # nothing but the place tells PointGPT-S from Point-MAE
    in_place = translate_official_recipe(write_official(tmp_path, "PointGPT-S", "objbg", text))
    assert in_place.recipe["model"]["name"] == "pointgpt_s"
    decision = next(d for d in in_place.decisions if d.startswith("model.NAME"))
    assert "ambiguous" in decision and "decided by the file's place cfgs/PointGPT-S/" in decision
    assert in_place.matches == "pointgpt_s/finetune_scan_objbg"

    elsewhere = translate_official_recipe(write_official(tmp_path, "Point-MAE", "objbg", text))
    assert elsewhere.recipe["model"]["name"] == "point_mae"
    decision = next(d for d in elsewhere.decisions if d.startswith("model.NAME"))
    assert "ambiguous" in decision and "not in a cfgs/PointGPT-*/ folder" in decision


def test_place_and_keys_that_contradict_are_refused(tmp_path):
    text = dapt_text("objbg").replace("PointTransformer_DAPT", "PointTransformer")
    text = text.replace('  class_token: "use",\n', '  prompt_layer: 11,\n')
    with pytest.raises(ConfigError, match=r"PointGPT-S.*prompt_layer"):
        translate_official_recipe(write_official(tmp_path, "PointGPT-S", "objbg", text))


# -- data-set base files ----------------------------------------------------------------------------------------
def test_an_existing_base_file_decides_the_data_set(tmp_path):
    base = tmp_path / "Point-MAE" / "cfgs" / "dataset_configs" / "my_scans.yaml"
    base.parent.mkdir(parents=True)
    base.write_text("NAME: ScanObjectNN\nROOT: data/ScanObjectNN/main_split_nobg\n")
    text = point_mae_text("objonly").replace(BASES["objonly"], "cfgs/dataset_configs/my_scans.yaml")
    translation = translate_official_recipe(write_official(tmp_path, "Point-MAE", "objonly", text))
    assert translation.recipe["dataset"]["split"] == "OBJ_ONLY"
    assert translation.matches == "finetune_scan_objonly"
    assert any("my_scans.yaml: NAME ScanObjectNN" in d for d in translation.decisions)


def test_base_file_keys_pcpeft_lacks_are_unmapped(tmp_path):
    base = tmp_path / "Point-MAE" / "cfgs" / "dataset_configs" / "ModelNet40.yaml"
    base.parent.mkdir(parents=True)
    base.write_text("NAME: ModelNet\nDATA_PATH: data/ModelNet/modelnet40_normal_resampled\nN_POINTS: 8192\n"
                    "NUM_CATEGORY: 40\nUSE_NORMALS: TRUE\n")
    translation = translate_official_recipe(write_official(tmp_path, "Point-MAE", "modelnet"))
    assert any("USE_NORMALS" in entry for entry in translation.unmapped)
    assert translation.recipe["dataset"]["cache_points"] == 8192


def test_an_unknown_data_set_names_the_file_and_key(tmp_path):
    text = point_mae_text("hardest").replace(BASES["hardest"], "cfgs/dataset_configs/ShapeNet-55.yaml")
    path = write_official(tmp_path, "Point-MAE", "hardest", text)
    with pytest.raises(ConfigError, match=r"finetune_scan_hardest\.yaml: dataset\.train\._base_: .*ShapeNet-55"):
        translate_official_recipe(path)


# -- user errors ------------------------------------------------------------------------------------------------
def test_user_errors_name_the_file_and_key(tmp_path):
    path = write_official(tmp_path, "Point-MAE", "hardest", point_mae_text("hardest").replace(
        "NAME: PointTransformer,", ""))
    with pytest.raises(ConfigError, match=r"finetune_scan_hardest\.yaml: model\.NAME"):
        translate_official_recipe(path)
    path.write_text(point_mae_text("hardest").replace("NAME: PointTransformer,", "NAME: PointNext,"))
    with pytest.raises(ConfigError, match=r"model\.NAME: 'PointNext'"):
        translate_official_recipe(path)
    path.write_text(point_mae_text("hardest").replace("NAME: PointTransformer,", "NAME: Point_MAE,"))
    with pytest.raises(ConfigError, match="pre-training model"):
        translate_official_recipe(path)
    path.write_text(point_mae_text("hardest").replace("total_bs : 32\n", ""))
    with pytest.raises(ConfigError, match=r"finetune_scan_hardest\.yaml: total_bs: missing"):
        translate_official_recipe(path)
    path.write_text(point_mae_text("hardest").replace("lr : 0.0005", "lr : fast"))
    with pytest.raises(ConfigError, match=r"optimizer\.kwargs\.lr: expected a number"):
        translate_official_recipe(path)


# -- other repositories' quirks ---------------------------------------------------------------------------------
def test_ppt_file_with_string_numbers(tmp_path):
    """zsc000722/PPT cfgs/pointmae_configs/finetune_scan_hardest.yaml: block style, embed_dim, a second grouping,
    ``lr: 5e-4`` (a string in YAML 1.1, made a float by the official builder)."""
    text = ("optimizer:\n  type: AdamW\n  kwargs:\n    lr: 5e-4\n    weight_decay: 0.05\n\n"
            "scheduler:\n  type: CosLR\n  kwargs:\n    epochs: 300\n    initial_epochs: 10\n\n"
            "dataset:\n" + "".join(f"  {s}:\n    _base_: {BASES['hardest']}\n    others:\n      subset: {u}\n"
                                   for s, u in (("train", "train"), ("val", "test"), ("test", "test")))
            + "\nmodel:\n  NAME: PointTransformer\n  embed_dim: 384\n  depth: 12\n  drop_path_rate: 0.3\n"
              "  cls_dim: 15\n  num_heads: 6\n  group_size: 32\n  num_group: 128\n  prompt_group_size: 32\n"
              "  prompt_num_group: 128\n  type: pos\n\n"
              "npoints: 2048\ntotal_bs: 32\nstep_per_update: 1\nmax_epoch: 300\ngrad_norm_clip: 10\n")
    path = tmp_path / "PPT" / "cfgs" / "pointmae_configs" / "finetune_scan_hardest.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    translation = translate_official_recipe(path)
    assert translation.recipe["optimizer"]["lr"] == 0.0005
    assert translation.recipe["peft"] == {"method": "ppt"}
    assert translation.recipe["augmentation"]["rotate"] is True  # PPT's runner rotates ScanObjectNN
    assert translation.matches == "methods/ppt_scan_hardest"
    assert translation.unmapped == []


def test_idpt_scan_files_rotate_as_its_runner_does(tmp_path):
    """ICCV23-IDPT cfgs/finetune_scan_hardest_idpt.yaml: its runner rotates when the config path holds 'scan'."""
    extra = "  prompt_layer: 11,\n  prompt_module: dgcnn,\n  cls_type: all\n"
    text = (_schedule_block("0.0005", 300, 10, part="only_new") + _dataset_block(BASES["hardest"])
            + _model_block("PointTransformer", 15, 128, "0.1", extra) + _tail(2048, 32))
    path = tmp_path / "IDPT" / "cfgs" / "finetune_scan_hardest_idpt.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    translation = translate_official_recipe(path)
    assert translation.recipe["peft"] == {"method": "idpt", "prompt_layer": 11, "head_input": "all"}
    assert translation.recipe["augmentation"] == {"scale_translate": False, "rotate": True, "up_axis": "y"}
    assert any("IDPT's runner rotates" in d for d in translation.decisions)


# -- the YAML text ----------------------------------------------------------------------------------------------
def test_to_yaml_lists_decisions_and_unmapped_keys_before_the_recipe(tmp_path):
    text = dapt_text("hardest") + "my_switch: 1\n"
    translation = translate_official_recipe(write_official(tmp_path, "DAPT", "hardest", text))
    assert isinstance(translation, Translation)
    out = translation.to_yaml()
    header = [line for line in out.splitlines() if line.startswith("#")]
    assert out.startswith("# ") and "# decisions:" in header and "# not mapped:" in header
    assert any("my_switch" in line for line in header)
    assert any("PointTransformer_DAPT" in line for line in header)
    assert yaml.safe_load(out) == translation.recipe
    validate_recipe(yaml.safe_load(out), "round trip")
    assert "_base_" not in out.split("# not mapped:")[1].split("\n", 2)[-1]


# -- the newest methods: MoST, GAPrompt, PointLoRA --------------------------------------------------------------
#: each repository's cfgs/dataset_configs files the newest methods' recipes name (text as in the repository)
NEWEST_BASES = {
    "MoST": {"ScanObjectNN_hardest.yaml": "NAME: ScanObjectNN_hardest\nROOT: data/ScanObjectNN/h5_files/main_split",
             "ModelNet40.yaml": "NAME: ModelNet\nDATA_PATH: data/ModelNet/modelnet40_normal_resampled\n"
                                "N_POINTS: 8192\nNUM_CATEGORY: 40\nUSE_NORMALS: FALSE"},
    "GAPrompt": {"ScanObjectNN_hardest.yaml": "NAME: ScanObjectNN_hardest\nROOT: ./data/ScanObjectNN/main_split",
                 "ScanObjectNN_objectbg.yaml": "NAME: ScanObjectNN\nROOT: data/ScanObjectNN/main_split",
                 "ScanObjectNN_objectonly.yaml": "NAME: ScanObjectNN\nROOT: data/ScanObjectNN/main_split_nobg",
                 "ModelNet40.yaml": "NAME: ModelNet\nDATA_PATH: ./data/ModelNet/modelnet40_normal_resampled\n"
                                    "N_POINTS: 8192\nNUM_CATEGORY: 40\nUSE_NORMALS: FALSE"},
    "PointLoRA": {"ScanObjectNN_hardest.yaml": "NAME: ScanObjectNN_hardest\nROOT: data/ScanObjectNN/main_split"},
}


def most_text(row: str) -> str:
    """xhanxu/MoST cfgs/PointGPT-L/finetune_<row>_peft.yaml (row: scan_hardest or modelnet)."""
    base = {"scan_hardest": "ScanObjectNN_hardest", "modelnet": "ModelNet40"}[row]
    classes, points = (15, 2048) if row == "scan_hardest" else (40, 1024)
    splits = "".join(f"    {split}:\n      {{\n        _base_: cfgs/dataset_configs/{base}.yaml,\n"
                     f"        others: {{ subset: \"{subset}\" }},\n      }},\n"
                     for split, subset in (("train", "train"), ("val", "test"), ("test", "test")))
    unused = "    loss: cdl2,\n    weight_center: 1,\n" if row == "modelnet" else ""
    return ("optimizer: { type: AdamW, kwargs: { lr: 0.0005, weight_decay: 0.05 } }\n\n"
            "scheduler: { type: CosLR, kwargs: { epochs: 50, initial_epochs: 10 } }\n\n"
            f"dataset:\n  {{\n{splits}  }}\n"
            f"model:\n  {{\n    NAME: PointTransformer,\n    trans_dim: 1024,\n    depth: 24,\n"
            f"    drop_path_rate: 0.1,\n    cls_dim: {classes},\n    num_heads: 16,\n    group_size: 32,\n"
            f"    num_group: 128,\n    encoder_dims: 1024,\n    decoder_depth: 4,\n{unused}"
            f"    peft_type: \"most\",\n    monarch_nblocks: 8,\n    fusion_layer: 3,\n  }}\n\n"
            f"npoints: {points}\ntotal_bs: 32\nstep_per_update: 1\nmax_epoch: 50\ngrad_norm_clip: 10\n")


#: GAPrompt per row: base file, classes, groups, points, point_number, perturbation, propagation_type, max_epoch
GAPROMPT_ROWS = {
    "scan_hardest": ("./cfgs/dataset_configs/ScanObjectNN_hardest.yaml", 15, 128, 2048, 5, "0.80",
                     "permutation_after_attention", 300),
    "scan_objbg": ("cfgs/dataset_configs/ScanObjectNN_objectbg.yaml", 15, 128, 2048, 10, "0.20",
                   "permutation_before_attention", 300),
    "scan_objonly": ("cfgs/dataset_configs/ScanObjectNN_objectonly.yaml", 15, 128, 2048, 10, "0.10",
                     "permutation_after_attention", 300),
    "modelnet": ("cfgs/dataset_configs/ModelNet40.yaml", 40, 64, 1024, 5, "0.05", "permutation_after_attention", 400),
}


def gaprompt_text(row: str) -> str:
    """zhoujiahuan1991/ICML2025-GAPrompt cfgs/gaprompt_<row>.yaml."""
    base, classes, groups, points, prompt_points, perturbation, propagation, epochs = GAPROMPT_ROWS[row]
    model = ("model : {\n  NAME: PointTransformer_pointtokenprompt, # PointTransformer_pointtokenprompt\n"
             f"  trans_dim: 384,\n  depth: 12,\n  drop_path_rate: 0.1,\n  if_half: False,\n  cls_dim: {classes},\n"
             f"  num_heads: 6,\n  group_size: 32,\n  num_group: {groups},\n  encoder_dims: 384,\n"
             "  adapter_config: {\n    adapter_dim: 16,\n    adapter_drop_path_rate: 0.1,\n  },\n"
             f"  point_number: {prompt_points},\n  scale: 0.01,\n  factor: 5,\n  perturbation: {perturbation},\n"
             "  point_prompt: True,\n  shift_net: True,\n  prompt_depth: 6,\n  scaler: False,\n  num_tokens: 10,\n"
             f"  propagation_type: '{propagation}' # permutation_after_attention\n}}\n")
    return (_schedule_block("0.0005", 300, 10) + _dataset_block(base) + model
            + _tail(points, 32).replace("max_epoch : 300", f"max_epoch : {epochs}") + "task: 'classification'")


def pointlora_text(row: str = "scan_hardest") -> str:
    """songw-zju/PointLoRA cfgs/finetune_scan_hardest_pointlora.yaml (its only recipe)."""
    return (_schedule_block("0.0005", 300, 10, part="pointlora") + _dataset_block(BASES["hardest"])
            + _model_block("PointTransformer_PointLoRA", 15, 128, "0.3") + "\n" + _tail(2048, 32))


#: (checkout folder, folder of the recipe in it, file name, text maker, shipped recipe) per repository
NEWEST = {
    "MoST": ("MoST", "cfgs/PointGPT-L", "finetune_{row}_peft.yaml", most_text, "methods/most_pointgpt_l_{row}"),
    "GAPrompt": ("ICML2025-GAPrompt", "cfgs", "gaprompt_{row}.yaml", gaprompt_text, "methods/gaprompt_{row}"),
    "PointLoRA": ("PointLoRA", "cfgs", "finetune_{row}_pointlora.yaml", pointlora_text, "methods/pointlora_{row}"),
}
NEWEST_CASES = [("MoST", "scan_hardest"), ("MoST", "modelnet"), *[("GAPrompt", row) for row in GAPROMPT_ROWS],
                ("PointLoRA", "scan_hardest")]
#: the peft section each row's official keys (and hard-coded values) must give
NEWEST_PEFT = {
    "MoST": {"method": "most", "monarch_blocks": 8, "neighbours": 4, "eps": 0.05, "fusion_layers": 3},
    "PointLoRA": {"method": "pointlora", "rank": 8, "top_k": 32, "scale2_top_k": 8, "mask_loss_weight": 0.004},
}


def write_newest(tmp_path: Path, repo: str, row: str, text: str | None = None) -> Path:
    """Write ``repo``'s official recipe of ``row`` and its data-set files where the checkout has them."""
    checkout, folder, name, make, _ = NEWEST[repo]
    bases = tmp_path / checkout / "cfgs" / "dataset_configs"
    bases.mkdir(parents=True, exist_ok=True)
    for base, content in NEWEST_BASES[repo].items():
        (bases / base).write_text(content)
    path = tmp_path / checkout / folder / name.format(row=row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(make(row) if text is None else text)
    return path


def gaprompt_peft(row: str) -> dict:
    _, _, _, _, prompt_points, perturbation, propagation, _ = GAPROMPT_ROWS[row]
    return {"method": "gaprompt", "prompt_points": prompt_points, "prompt_scale": 0.01, "prompt_factor": 5.0,
            "perturbation": float(perturbation), "propagation": propagation.split("_")[1],
            "prompt_depth": 6, "propagation_index": "official", "head_dropout": 0.6}


@pytest.mark.parametrize("repo,row", NEWEST_CASES)
def test_newest_official_files_translate_to_the_shipped_recipe(tmp_path, repo, row):
    path = write_newest(tmp_path, repo, row)
    assert is_official_recipe(yaml.safe_load(path.read_text()))
    translation = translate_official_recipe(path)
    name = NEWEST[repo][4].format(row=row)
    ours = validate_recipe(translation.recipe, "translated")
    shipped = validate_recipe(load_config(resolve_recipe(name)), name)

    assert translation.unmapped == []
    assert translation.matches == name
    assert shipped_differences(translation, name) == []
    assert translation.recipe["peft"] == (NEWEST_PEFT.get(repo) or gaprompt_peft(row))
    assert resolve_configs(ours.peft) == resolve_configs(shipped.peft)
    assert ours.model == shipped.model
    assert ours.dataset.model_dump() == shipped.dataset.model_dump()
    assert ours.augmentation.model_dump() == shipped.augmentation.model_dump()
    assert ours.scheduler.model_dump() == shipped.scheduler.model_dump()
    # not compared by matches: the official validation batch and fp32 training, as the shipped recipes
    assert ours.test.batch_size == shipped.test.batch_size and ours.train.amp == shipped.train.amp
    assert ours.train.aux_loss_weight == shipped.train.aux_loss_weight


def test_most_is_told_from_pointgpt_l_by_its_keys(tmp_path):
    most = translate_official_recipe(write_newest(tmp_path, "MoST", "scan_hardest"))
    decision = next(d for d in most.decisions if d.startswith("model.NAME"))
    assert "peft_type, monarch_nblocks, fusion_layer are MoST's" in decision and "pointgpt_l" in decision
    assert most.recipe["augmentation"] == {"scale_translate": False, "rotate": True, "up_axis": "y"}  # per cloud
    assert any(d.startswith("MoST fuses the raw outputs of blocks [7, 15, 23]") for d in most.decisions)
    modelnet = translate_official_recipe(write_newest(tmp_path, "MoST", "modelnet"))
    assert modelnet.recipe["augmentation"]["scale_translate"] is True  # runner_peft: base NAME ModelNet
    assert modelnet.recipe["model"]["num_group"] == 128  # MoST keeps 128 groups at 1k points

    text = most_text("scan_hardest").replace('    peft_type: "most",\n    monarch_nblocks: 8,\n    fusion_layer: 3,\n',
                                             "")
    plain = translate_official_recipe(write_newest(tmp_path, "MoST", "scan_hardest", text))
    assert plain.recipe["model"]["name"] == "pointgpt_l" and "peft" not in plain.recipe
    assert plain.recipe["train"]["batch_size"] == 32 and plain.matches is None


def test_most_keys_pcpeft_cannot_reproduce(tmp_path):
    text = most_text("scan_hardest").replace("fusion_layer: 3", "fusion_layer: 5").replace(
        '"most"', '"full"').replace("num_group: 128", "num_group: 64")
    translation = translate_official_recipe(write_newest(tmp_path, "MoST", "scan_hardest", text))
    keys = [entry.split(":")[0] for entry in translation.unmapped]
    assert keys == ["model.peft_type", "model.fusion_layer", "model.num_group"], translation.unmapped
    assert "[3, 7, 11, 15, 19, 23]" in translation.unmapped[1]  # official: every 4th block from 23
    assert "deepest 5: [7, 11, 15, 19, 23]" in translation.unmapped[1]
    assert translation.recipe["peft"]["fusion_layers"] == 5 and translation.matches is None

    path = write_newest(tmp_path, "MoST", "scan_hardest", most_text("scan_hardest").replace('peft_type: "most",', ""))
    with pytest.raises(ConfigError, match=r"finetune_scan_hardest_peft\.yaml: model\.peft_type: missing"):
        translate_official_recipe(path)


def test_gaprompt_rows_take_their_propagation_and_batch_rotation(tmp_path):
    objbg = translate_official_recipe(write_newest(tmp_path, "GAPrompt", "scan_objbg"))
    assert objbg.recipe["peft"]["propagation"] == "before" and objbg.recipe["peft"]["prompt_points"] == 10
    assert objbg.recipe["dataset"]["split"] == "OBJ_BG"
    modelnet = translate_official_recipe(write_newest(tmp_path, "GAPrompt", "modelnet"))
    assert modelnet.recipe["scheduler"]["epochs"] == 400 and modelnet.recipe["scheduler"]["cosine_epochs"] == 300
    assert modelnet.recipe["augmentation"]["rotate"] is True  # every data set, ModelNet included
    assert modelnet.recipe["augmentation"]["rotate_per"] == "batch"
    assert modelnet.recipe["test"]["batch_size"] == 64  # validation at 2 x total_bs
    assert any(d.startswith("task 'classification'") for d in modelnet.decisions)
    assert any(d.startswith("model.if_half False: ignored") for d in modelnet.decisions)


def test_gaprompt_keys_pcpeft_cannot_reproduce(tmp_path):
    text = gaprompt_text("scan_hardest").replace("permutation_after_attention'", "replacement_after_attention'")
    text = text.replace("scaler: False", "scaler: True").replace("num_tokens: 10", "num_tokens: 20")
    text = text.replace("shift_net: True", "shift_net: False").replace("'classification'", "'segmentation'")
    translation = translate_official_recipe(write_newest(tmp_path, "GAPrompt", "scan_hardest", text))
    keys = sorted(entry.split(":")[0] for entry in translation.unmapped)
    assert keys == ["model.num_tokens", "model.propagation_type", "model.scaler", "model.shift_net", "task"]
    assert translation.recipe["peft"]["propagation"] == "after"
    assert translation.recipe["peft"]["perturbation"] == 0.8  # the ShiftNet pcpeft keeps takes the file's value

    path = write_newest(tmp_path, "GAPrompt", "scan_hardest", gaprompt_text("scan_hardest").replace(
        "  point_number: 5,\n", ""))
    with pytest.raises(ConfigError, match=r"gaprompt_scan_hardest\.yaml: model\.point_number: missing"):
        translate_official_recipe(path)


def test_pointlora_needs_its_part_and_grouping(tmp_path):
    text = pointlora_text().replace("  part: pointlora,\n", "").replace("num_group: 128", "num_group: 64")
    translation = translate_official_recipe(write_newest(tmp_path, "PointLoRA", "scan_hardest", text))
    keys = sorted(entry.split(":")[0] for entry in translation.unmapped)
    assert keys == ["model.num_group", "optimizer"], translation.unmapped
    assert "set part: pointlora" in next(e for e in translation.unmapped if e.startswith("optimizer"))
    assert translation.recipe["peft"]["mask_loss_weight"] == 0.004
    assert translation.recipe["augmentation"] == {"scale_translate": True, "rotate": False, "up_axis": "y"}
