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
