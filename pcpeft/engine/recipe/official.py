"""Recipes written in the official repositories' dialect, translated into pcpeft recipes.

Point-MAE, Point-BERT, ACT, ReCon, PointGPT and the PEFT repositories built on them (DAPT, IDPT, PPT, PointGST,
MoST, GAPrompt, PointLoRA) share one recipe dialect::

    model: {NAME: PointTransformer, trans_dim: 384, depth: 12, cls_dim: 15, num_group: 128, ...}
    dataset: {train: {_base_: cfgs/dataset_configs/ScanObjectNN_hardest.yaml, others: {subset: train}}, ...}
    optimizer: {type: AdamW, part: dapt, kwargs: {lr: 0.0005, weight_decay: 0.05}}
    scheduler: {type: CosLR, kwargs: {epochs: 300, initial_epochs: 10}}
    npoints: 2048
    total_bs: 32
    max_epoch: 300
    grad_norm_clip: 10

:func:`translate_official_recipe` reads such a file and returns a :class:`Translation`: a whole pcpeft recipe
(``_base_`` already merged) that :func:`~pcpeft.engine.recipe.schema.validate_recipe` accepts, the list of decisions
(which key decided what, and why), the list of keys that cannot be mapped (each with its reason), and the name of
the shipped recipe with the same settings when there is one.

What a file does not say is taken from the official code of the repository the file belongs to (its runner's
augmentation, its scheduler's floors); every such choice is listed in ``decisions``. The repository and the
backbone are decided from ``model.NAME``, the method keys next to it and the file's place
(``cfgs/PointGPT-S/...``): the name ``PointTransformer`` alone is registered by Point-MAE, Point-BERT, ACT, ReCon,
PointGPT, MoST, IDPT and PPT. Every key of the file ends up in ``decisions`` or in ``unmapped``; none is dropped
silently.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Iterable, Optional

import yaml

from .shipped import RECIPES_DIR, shipped_recipes
from .yaml_io import ConfigError, deep_merge, load_config, read_yaml

if TYPE_CHECKING:
    from .schema import Settings

#: top-level keys only the official dialect has
OFFICIAL_TOP_KEYS = ("total_bs", "max_epoch", "npoints")
#: the official dialect's data set subsections
SPLIT_SECTIONS = ("train", "val", "test")
#: shipped recipe folders that hold fragments (``_base_`` parts), not recipes
FRAGMENT_FOLDERS = ("datasets", "models", "schedules")

#: NAMEs of pre-training models: a pre-training file is not a fine-tuning recipe
PRETRAIN_NAMES = ("Point_MAE", "Point_BERT", "PointGPT", "ReCon", "TwoTower", "DiscreteVAE", "ACT_PointBERT",
                  "ACT_PointDistillation")
#: every fine-tuning NAME the translator knows, with the repository that registers it
KNOWN_NAMES = {
    "PointTransformer": "Point-MAE, Point-BERT, ACT, ReCon, PointGPT, MoST, IDPT, PPT (decided by the other keys)",
    "PointTransformerRaw": "IDPT's full fine-tuning model (zyh16143998882/ICCV23-IDPT models/Point_MAE.py)",
    "PointTransformer_DAPT": "DAPT (LMD0311/DAPT models/DAPT.py)",
    "PointTransformer_PGST": "PointGST (jerryfeng2003/PointGST models/PointTransformer.py)",
    "GPT_Transformer_PGST": "PointGST on PointGPT (jerryfeng2003/PointGST models/PointGPT.py)",
    "GPT_Transformer_DAPT": "DAPT on PointGPT (jerryfeng2003/PointGST models/PointGPT_DAPT.py)",
    "PointTransformer_pointtokenprompt": "GAPrompt (zhoujiahuan1991/ICML2025-GAPrompt models/prompt_MAE.py)",
    "PointTransformer_PointLoRA": "PointLoRA (songw-zju/PointLoRA models/PointLoRA.py)",
}
#: model keys only MoST's ``PointTransformer`` reads (xhanxu/MoST models/PointGPT_MoST.py, tools/runner_peft.py)
MOST_KEYS = ("peft_type", "monarch_nblocks", "fusion_layer")
#: GAPrompt's ``propagation_type`` values pcpeft's gaprompt has, as its ``propagation``
GAPROMPT_PROPAGATION = {"permutation_after_attention": "after", "permutation_before_attention": "before"}

#: PointGPT sizes by (trans_dim, depth, num_heads)
POINTGPT_SIZES = {(384, 12, 6): "pointgpt_s", (768, 12, 12): "pointgpt_b", (1024, 24, 16): "pointgpt_l"}
#: official folder of each PointGPT size
POINTGPT_PLACES = {"pointgpt-s": "pointgpt_s", "pointgpt-b": "pointgpt_b", "pointgpt-l": "pointgpt_l"}

#: official data-set base file name (lower case, no suffix) -> (pcpeft data set, ScanObjectNN split)
DATASET_BASES = {
    "scanobjectnn_hardest": ("ScanObjectNN", "PB_T50_RS"),
    "scanobjectnn_objectbg": ("ScanObjectNN", "OBJ_BG"),
    "scanobjectnn_objectonly": ("ScanObjectNN", "OBJ_ONLY"),
    "modelnet40": ("ModelNet40", None),
    "modelnet10": ("ModelNet40", None),
    "modelnet40fewshot": ("ModelNetFewShot", None),
}
#: shipped data-set fragment each pcpeft data set (and split) starts from (root, format, cache)
DATASET_FRAGMENTS = {
    ("ScanObjectNN", "OBJ_BG"): "datasets/scanobjectnn_obj_bg.yaml",
    ("ScanObjectNN", "OBJ_ONLY"): "datasets/scanobjectnn_obj_only.yaml",
    ("ScanObjectNN", "PB_T50_RS"): "datasets/scanobjectnn_pb_t50_rs.yaml",
    ("ModelNet40", None): "datasets/modelnet40_1k.yaml",
    ("ModelNetFewShot", None): "datasets/modelnet40_fewshot.yaml",
}
#: keys of an official data-set base file the translator reads
BASE_FILE_KEYS = ("NAME", "ROOT", "DATA_PATH", "N_POINTS", "NUM_CATEGORY", "USE_NORMALS")

#: the official CosLR builders' fixed floors: warm-up start and final lr (tools/builder.py of each repository)
COSLR_WARMUP_LR = 1e-6
COSLR_MIN_LR = {"ACT": 1e-7}
DEFAULT_MIN_LR = 1e-6

#: optimizer.part value each method's official builder expects
METHOD_PARTS = {"dapt": "dapt", "pointgst": "adapt", "idpt": "only_new", "pointlora": "pointlora"}
#: methods whose logits depend on the other clouds of the batch, with the official validation batch as a multiple of
#: total_bs (each repository's main.py without a launcher: MoST's val bs is total_bs, GAPrompt's 2 x total_bs)
BATCH_DEPENDENT = {"most": 1, "gaprompt": 2}


# -- the result -------------------------------------------------------------------------------------------------
@dataclass
class Translation:
    """A translated official recipe.

    ``recipe``: a whole pcpeft recipe (no ``_base_``) that ``validate_recipe`` accepts; ``decisions``: what was
    decided from which key and why; ``unmapped``: ``"key: reason"`` for each key (or official behaviour) that
    cannot be mapped; ``source``: the official file; ``matches``: the shipped recipe whose settings equal the
    translated recipe's (model, data set, PEFT, optimiser, schedule, batch, clipping, loss terms, augmentation), or
    None. What neither can reproduce is in ``unmapped``."""

    recipe: dict
    decisions: list[str]
    unmapped: list[str]
    source: str
    matches: Optional[str] = None

    def to_yaml(self) -> str:
        """The recipe as YAML, after a comment block naming the source, the matching shipped recipe, every
        decision and every unmapped key."""
        lines = [f"# pcpeft recipe translated from the official recipe {self.source}"]
        if self.matches:
            lines.append(f"# the same settings as the shipped recipe {self.matches}")
        lines.append("# decisions:")
        lines += [f"#   - {_one_line(text)}" for text in self.decisions] or ["#   (none)"]
        lines.append("# not mapped:")
        lines += [f"#   - {_one_line(text)}" for text in self.unmapped] or ["#   (none)"]
        body = yaml.safe_dump(self.recipe, sort_keys=False, default_flow_style=None, width=120)
        return "\n".join(lines) + "\n" + body


def _one_line(text: str) -> str:
    """``text`` with its whitespace runs (newlines included) made single spaces."""
    return " ".join(str(text).split())


# -- bookkeeping ------------------------------------------------------------------------------------------------
@dataclass
class _Ledger:
    """Decisions and unmapped keys of one translation, and which official keys are accounted for."""

    source: str
    decisions: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)

    def decide(self, keys: str | Iterable[str], text: str) -> None:
        """Record ``text`` as a decision and mark the dotted ``keys`` (one or several) as accounted for."""
        self.mark(keys)
        self.decisions.append(text)

    def unmap(self, key: str, reason: str) -> None:
        """Record ``key`` as not mapped, with ``reason``."""
        self.mark(key)
        self.unmapped.append(f"{key}: {reason}")

    def mark(self, keys: str | Iterable[str]) -> None:
        """Mark the dotted ``keys`` (one or several) as accounted for."""
        self.handled.update([keys] if isinstance(keys, str) else keys)

    def is_handled(self, key: str) -> bool:
        """Whether ``key`` or a section above it is accounted for."""
        parts = key.split(".")
        return any(".".join(parts[:n]) in self.handled for n in range(1, len(parts) + 1))

    def error(self, key: str, text: str) -> ConfigError:
        """A :class:`ConfigError` naming the file and ``key``."""
        return ConfigError(f"{self.source}: {key}: {text}")


@dataclass
class _Origin:
    """Which official model a file means: its repository, pcpeft's backbone and PEFT method, and the evidence."""

    repo: str
    backbone: str
    method: Optional[str]
    evidence: str
    place: Optional[str] = None  # the official folder that named the backbone, when it did


@dataclass
class _Data:
    """The data set a file trains on: pcpeft's name and split, the official base NAME and the base file's keys."""

    name: str
    split: Optional[str]
    official_name: Optional[str]
    base: dict
    base_label: str


# -- recognising ------------------------------------------------------------------------------------------------
def is_official_recipe(config: dict) -> bool:
    """True when ``config`` (one YAML file's mapping) is in the official dialect: a model section with ``NAME``,
    a dataset section with ``train`` / ``val`` / ``test`` subsections, or a top-level ``total_bs`` /
    ``max_epoch`` / ``npoints``. A pcpeft recipe has none of these."""
    if not isinstance(config, dict):
        return False
    model, dataset = config.get("model"), config.get("dataset")
    if isinstance(model, dict) and "NAME" in model:
        return True
    if isinstance(dataset, dict) and any(isinstance(dataset.get(k), dict) for k in SPLIT_SECTIONS):
        return True
    return any(key in config for key in OFFICIAL_TOP_KEYS)


# -- translating ------------------------------------------------------------------------------------------------
def translate_official_recipe(path: str | Path, config: dict | None = None) -> Translation:
    """Translate the official recipe at ``path`` (its mapping ``config`` when already read) into a pcpeft recipe.

    Raises :class:`ConfigError` naming the file and key when the file is not in the official dialect, lacks a key
    the official code requires, or names a model or data set pcpeft has no counterpart of."""
    path = Path(path)
    source = str(path)
    official = _read_official(path, config)
    ledger = _Ledger(source)
    model_cfg = _section(official, "model", ledger)
    origin = _identify(model_cfg, path, ledger)
    data = _dataset_choice(official, path, ledger)
    recipe: dict[str, Any] = {"model": _model_section(model_cfg, origin, ledger),
                              "dataset": _dataset_section(official, data, ledger)}
    _check_classes(recipe["model"]["num_classes"], recipe["dataset"], ledger)
    peft = _peft_section(official, model_cfg, origin, ledger)
    if peft is not None:
        recipe["peft"] = peft
    recipe["optimizer"] = _optimizer_section(official, origin, ledger)
    recipe["scheduler"] = _scheduler_section(official, origin, ledger)
    train = _train_section(official, origin, ledger)
    augmentation = _augmentation_section(origin, data, path, ledger)
    base = _base_recipe(ledger)
    recipe.update(train=deep_merge(base["train"], train), test=dict(base["test"]), augmentation=augmentation)
    _batch_dependent(recipe["train"], recipe["test"], origin, ledger)
    _account_for_the_rest(official, ledger)
    comparable = _comparable(_validate(recipe, source))
    matches = _matching_shipped(comparable)
    if matches is None:
        _report_nearest(comparable, ledger)
    return Translation(recipe, ledger.decisions, ledger.unmapped, source, matches)


def _read_official(path: Path, config: dict | None) -> dict:
    """The official file's mapping (``config`` when given); a :class:`ConfigError` when it is not official."""
    if config is None:
        if not path.is_file():
            raise ConfigError(f"official recipe not found: {path}")
        config = read_yaml(path)
    if not isinstance(config, dict) or not is_official_recipe(config):
        raise ConfigError(f"{path}: not an official repository's recipe (no model.NAME, no dataset train/val/test "
                          f"sections, no total_bs / max_epoch / npoints)")
    return copy.deepcopy(config)


def _section(config: dict, key: str, ledger: _Ledger) -> dict:
    """The mapping under ``key``; a :class:`ConfigError` when it is missing or not a mapping."""
    value = config.get(key)
    if not isinstance(value, dict):
        raise ledger.error(key, f"the official code needs a '{key}' section (a mapping), found {value!r}")
    return value


def _number(value: Any, key: str, ledger: _Ledger, kind: type = float) -> float | int:
    """``value`` as ``kind``; a YAML-1.1 string such as ``5e-4`` is read as the number the official ``float()``
    makes of it (and said so); anything else raises :class:`ConfigError` naming the key."""
    if isinstance(value, bool) or value is None:
        raise ledger.error(key, f"expected a number, found {value!r}")
    if isinstance(value, (int, float)):
        if kind is int and float(value) != int(value):
            raise ledger.error(key, f"expected a whole number, found {value!r}")
        return kind(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ledger.error(key, f"expected a number, found {value!r}") from None
        ledger.decisions.append(f"{key} {value!r} is a string in YAML 1.1; read as {number!r} (as the official "
                                f"builder's float())")
        return _number(number, key, ledger, kind)
    raise ledger.error(key, f"expected a number, found {value!r}")


def _required(section: dict, key: str, prefix: str, ledger: _Ledger, kind: type = float) -> float | int:
    """``section[key]`` as a number (:func:`_number`); a :class:`ConfigError` naming ``prefix.key`` when missing."""
    if key not in section:
        raise ledger.error(f"{prefix}.{key}" if prefix else key, "missing (the official code reads it)")
    return _number(section[key], f"{prefix}.{key}" if prefix else key, ledger, kind)


# -- which model ------------------------------------------------------------------------------------------------
def _identify(model: dict, path: Path, ledger: _Ledger) -> _Origin:
    """The official model ``model.NAME`` means, from the name, the keys beside it and the file's place."""
    name = model.get("NAME")
    if not isinstance(name, str):
        raise ledger.error("model.NAME", f"missing or not a name ({name!r}); known fine-tuning names: "
                                         f"{', '.join(KNOWN_NAMES)}")
    if name in PRETRAIN_NAMES:
        raise ledger.error("model.NAME", f"{name} is a pre-training model; translate a fine-tuning recipe "
                                         f"(pcpeft pre-trains with tools/pretrain.py and its own recipes)")
    if name == "PointTransformer":
        origin = _identify_point_transformer(model, path, ledger)
    elif name == "PointTransformerRaw":
        origin = _Origin("IDPT", "point_mae", None, "model.NAME PointTransformerRaw is IDPT's copy of Point-MAE's "
                                                    "model (cls token + max-pooled patches into the MLP head)")
    elif name == "PointTransformer_DAPT":
        origin = _Origin("DAPT", "point_mae", "dapt", "model.NAME PointTransformer_DAPT is DAPT's model (Point-MAE's "
                                                      "architecture with DAPT's adapters and prompts)")
    elif name == "PointTransformer_PGST":
        origin = _pointgst_origin(path)
    elif name in ("GPT_Transformer_PGST", "GPT_Transformer_DAPT"):
        origin = _pointgst_gpt_origin(name, model, ledger)
    elif name == "PointTransformer_pointtokenprompt":
        origin = _Origin("GAPrompt", "point_mae", "gaprompt",
                         "model.NAME PointTransformer_pointtokenprompt is GAPrompt's model (Point-MAE's architecture "
                         "with ShiftNet, point and token prompts, propagation and adapters)")
    elif name == "PointTransformer_PointLoRA":
        origin = _Origin("PointLoRA", "point_mae", "pointlora",
                         "model.NAME PointTransformer_PointLoRA is PointLoRA's model (Point-MAE's architecture with "
                         "LoRA on qkv / proj, shared prompt MLPs and multi-scale token selection)")
    else:
        raise ledger.error("model.NAME", f"{name!r} is not a model the translator knows; known fine-tuning names: "
                                         + "; ".join(f"{k} ({v})" for k, v in KNOWN_NAMES.items()))
    ledger.decide("model.NAME", f"model.NAME {name} -> backbone {origin.backbone}"
                                f"{', method ' + origin.method if origin.method else ''} ({origin.repo}): "
                                f"{origin.evidence}")
    return origin


def _place(path: Path) -> list[str]:
    """The file's folder names, lower case (its place in an official checkout)."""
    return [part.lower() for part in PurePath(path).parent.parts]


def _pointgpt_place(path: Path) -> tuple[str, str] | None:
    """(backbone, folder) when the file lies in a ``cfgs/PointGPT-S|B|L/`` folder, else None."""
    for folder in PurePath(path).parent.parts:
        if folder.lower() in POINTGPT_PLACES:
            return POINTGPT_PLACES[folder.lower()], folder
    return None


def _pointgpt_size(model: dict, ledger: _Ledger) -> str | None:
    """The PointGPT size the model's (trans_dim, depth, num_heads) are, or None when they are no official size."""
    try:
        key = tuple(int(_number(model[k], f"model.{k}", ledger)) for k in ("trans_dim", "depth", "num_heads"))
    except KeyError:
        return None
    return POINTGPT_SIZES.get(key)


def _identify_point_transformer(model: dict, path: Path, ledger: _Ledger) -> _Origin:
    """``PointTransformer``: decided by the file's place (``cfgs/PointGPT-S/``), then by the keys beside it."""
    ambiguous = "model.NAME PointTransformer is ambiguous (Point-MAE and PointGPT-S, among others, register it)"
    place = _pointgpt_place(path)
    if any(key in model for key in MOST_KEYS):
        return _most_origin(model, place, ambiguous, ledger)
    method_keys = sorted(k for k in model if k in ("prompt_layer", "prompt_module", "cls_type", "prompt_group_size",
                                                   "prompt_num_group", "transfer_type", "type"))
    if place is not None:
        return _pointgpt_by_place(model, place, method_keys, ambiguous, ledger)
    if "decoder_depth" in model:
        size = _pointgpt_size(model, ledger)
        if size is None:
            raise ledger.error("model.trans_dim", "model.decoder_depth says PointGPT, but trans_dim/depth/num_heads "
                                                  f"are none of its sizes {sorted(POINTGPT_SIZES.values())}")
        return _Origin("PointGPT", size, None, f"{ambiguous}; model.decoder_depth is read only by PointGPT's model, "
                                               f"and trans_dim/depth/num_heads are {size}'s")
    return _identify_by_keys(model, path, ambiguous, ledger)


def _pointgpt_by_place(model: dict, place: tuple[str, str], method_keys: list[str], ambiguous: str,
                       ledger: _Ledger) -> _Origin:
    """A ``PointTransformer`` in ``cfgs/PointGPT-S|B|L/``: PointGPT; the size the folder names, unless the widths
    are another official size (the official code builds the model from the keys)."""
    backbone, folder = place
    if method_keys:
        raise ledger.error("model", f"the file lies in cfgs/{folder}/ (PointGPT) but has keys of another "
                                    f"repository's model: {', '.join(method_keys)}")
    also = "; model.decoder_depth agrees (only PointGPT reads it)" if "decoder_depth" in model else ""
    size = _pointgpt_size(model, ledger)
    if size is not None and size != backbone:
        return _Origin("PointGPT", size, None, f"{ambiguous}; the file's place cfgs/{folder}/ says PointGPT{also}, "
                                               f"and trans_dim/depth/num_heads are {size}'s, not {backbone}'s: the "
                                               f"official code builds the model from the keys, so {size}",
                       place=folder)
    return _Origin("PointGPT", backbone, None, f"{ambiguous}; decided by the file's place cfgs/{folder}/{also}",
                   place=folder)


def _most_origin(model: dict, place: tuple[str, str] | None, ambiguous: str, ledger: _Ledger) -> _Origin:
    """MoST's ``PointTransformer`` (PointGPT's model with a PointMonarch in every block): the size from the widths."""
    keys = ", ".join(key for key in MOST_KEYS if key in model)
    size = _pointgpt_size(model, ledger)
    if size is None:
        raise ledger.error("model.trans_dim", f"{keys} say MoST (PointGPT with PointMonarch adapters), but "
                                              f"trans_dim/depth/num_heads are none of PointGPT's sizes "
                                              f"{sorted(POINTGPT_SIZES.values())}")
    where = f" (in cfgs/{place[1]}/)" if place is not None else ""
    return _Origin("MoST", size, "most", f"{ambiguous}; {keys} are MoST's (xhanxu/MoST models/PointGPT_MoST.py: "
                                         f"PointGPT's model with a PointMonarch in every block){where}, and "
                                         f"trans_dim/depth/num_heads are {size}'s",
                   place=place[1] if place is not None else None)


def _identify_by_keys(model: dict, path: Path, ambiguous: str, ledger: _Ledger) -> _Origin:
    """A ``PointTransformer`` outside PointGPT's folders, by the method keys next to it."""
    if "prompt_group_size" in model or "prompt_num_group" in model:
        started = (" (cfgs/recon_configs/: the same model, started from ReCon's pre-training file)"
                   if "recon_configs" in _place(path) else "")
        return _Origin("PPT", "point_mae", "ppt", f"{ambiguous}; prompt_group_size / prompt_num_group are PPT's "
                                                   f"(zsc000722/PPT models/PPT.py, Point-MAE's architecture){started}")
    if any(k in model for k in ("prompt_layer", "prompt_module", "cls_type")):
        return _Origin("IDPT", "point_mae", "idpt", f"{ambiguous}; prompt_layer / prompt_module / cls_type are "
                                                     f"IDPT's (zyh16143998882/ICCV23-IDPT models/Point_MAE.py)")
    if "transfer_type" in model:
        return _Origin("ACT", "act", None, f"{ambiguous}; transfer_type (with embed_dim) is ACT's "
                                           f"(RunpeiDong/ACT models/act.py)")
    if model.get("type") in ("full", "linear", "mlp3") or "img_queries" in model or "text_queries" in model:
        return _Origin("ReCon", "recon", None, f"{ambiguous}; type: {model.get('type')} is ReCon's "
                                               f"(qizekun/ReCon models/transformer.py)")
    width = model.get("trans_dim", model.get("embed_dim"))
    if "encoder_dims" in model and width is not None and model["encoder_dims"] != width:
        return _Origin("Point-BERT", "point_bert", None,
                       f"{ambiguous}; encoder_dims {model['encoder_dims']} != trans_dim {width}: Point-BERT's "
                       f"dVAE-width tokenizer with reduce_dim (lulutang0608/Point-BERT models/Point_BERT.py)")
    return _Origin("Point-MAE", "point_mae", None,
                   f"{ambiguous}; no method keys, no decoder_depth, encoder_dims = trans_dim and not in a "
                   f"cfgs/PointGPT-*/ folder: Point-MAE's model (the DAPT, IDPT and PointGST repositories ship the "
                   f"same one for full fine-tuning)")


def _pointgst_origin(path: Path) -> _Origin:
    """PointGST's ``PointTransformer_PGST``: Point-MAE's architecture; its folder names the pre-training file."""
    place = _place(path)
    if "act" in place:
        return _Origin("PointGST", "act", "pointgst", "model.NAME PointTransformer_PGST in cfgs/act/: PointGST on "
                                                      "ACT's model (Point-MAE's architecture, ACT's pre-training "
                                                      "file)", place="act")
    if "recon" in place:
        return _Origin("PointGST", "point_mae", "pointgst",
                       "model.NAME PointTransformer_PGST in cfgs/recon/: PointGST's model is Point-MAE's "
                       "architecture started from ReCon's pre-training file (pass it with --ckpts); pcpeft's "
                       "recon backbone has ReCon's global-token branch, which this model lacks", place="recon")
    return _Origin("PointGST", "point_mae", "pointgst", "model.NAME PointTransformer_PGST: PointGST on Point-MAE")


def _pointgst_gpt_origin(name: str, model: dict, ledger: _Ledger) -> _Origin:
    """PointGST's PointGPT models (``GPT_Transformer_PGST`` / ``_DAPT``): the size from the widths."""
    size = _pointgpt_size(model, ledger)
    if size is None:
        raise ledger.error("model.trans_dim", f"{name}: trans_dim/depth/num_heads are none of PointGPT's sizes")
    method = "pointgst" if name.endswith("PGST") else "dapt"
    return _Origin("PointGST", size, method, f"model.NAME {name}: {method} on PointGPT; trans_dim/depth/num_heads "
                                             f"are {size}'s")


# -- model ------------------------------------------------------------------------------------------------------
def _model_section(model: dict, origin: _Origin, ledger: _Ledger) -> dict:
    """pcpeft's ``model`` section from the official one."""
    out: dict[str, Any] = {"name": origin.backbone}
    width_key = "embed_dim" if "embed_dim" in model and "trans_dim" not in model else "trans_dim"
    out["trans_dim"] = _required(model, width_key, "model", ledger, int)
    if width_key == "embed_dim":
        ledger.decide("model.embed_dim", f"model.embed_dim {out['trans_dim']} -> model.trans_dim ({origin.repo} "
                                         f"names the token width embed_dim)")
    else:
        ledger.mark("model.trans_dim")
    for key in ("depth", "num_heads"):
        out[key] = _required(model, key, "model", ledger, int)
        ledger.mark(f"model.{key}")
    if origin.backbone.startswith("pointgpt"):
        out.update(_pointgpt_options(model, out["trans_dim"], origin.repo, ledger))
    else:
        out.update(_point_transformer_options(model, out["trans_dim"], origin, ledger))
    out["num_classes"] = _required(model, "cls_dim", "model", ledger, int)
    ledger.decide("model.cls_dim", f"model.cls_dim {out['num_classes']} -> model.num_classes")
    for key in ("num_group", "group_size"):
        out[key] = _required(model, key, "model", ledger, int)
        ledger.mark(f"model.{key}")
    _drop_rate(model, ledger)
    return out


def _point_transformer_options(model: dict, width: int, origin: _Origin, ledger: _Ledger) -> dict:
    """``encoder_dims`` and ``drop_path_rate`` of the Point-MAE-family backbones."""
    out: dict[str, Any] = {}
    if "encoder_dims" in model:
        out["encoder_dims"] = _number(model["encoder_dims"], "model.encoder_dims", ledger, int)
        ledger.mark("model.encoder_dims")
    else:
        out["encoder_dims"] = width
        ledger.decisions.append(f"model.encoder_dims = {width}: the file has none; {origin.repo}'s tokenizer is as "
                                f"wide as the tokens")
    if "drop_path_rate" in model:
        out["drop_path_rate"] = _number(model["drop_path_rate"], "model.drop_path_rate", ledger)
        ledger.mark("model.drop_path_rate")
    else:
        raise ledger.error("model.drop_path_rate", "missing (the official model reads it)")
    return out


def _pointgpt_options(model: dict, width: int, repo: str, ledger: _Ledger) -> dict:
    """PointGPT's ``tokenizer`` (from ``encoder_dims``) and ``decoder_depth``; its ``drop_path_rate`` is unused."""
    dims = _number(model.get("encoder_dims", width), "model.encoder_dims", ledger, int)
    tokenizer = "small" if dims == 384 else "large"
    ledger.decide("model.encoder_dims", f"model.encoder_dims {dims} -> model.tokenizer {tokenizer} (PointGPT builds "
                                        f"Encoder_small for 384, Encoder_large otherwise)")
    if dims != width:
        ledger.unmap("model.encoder_dims", f"{dims} != trans_dim {width}; pcpeft's PointGPT tokenizer outputs "
                                           f"trans_dim")
    out: dict[str, Any] = {"tokenizer": tokenizer}
    if "decoder_depth" in model:
        out["decoder_depth"] = _number(model["decoder_depth"], "model.decoder_depth", ledger, int)
        ledger.mark("model.decoder_depth")
    else:
        out["decoder_depth"] = 4
        ledger.decisions.append("model.decoder_depth = 4: the file has none (the official generator's depth)")
    if "drop_path_rate" in model:
        ledger.decide("model.drop_path_rate", f"model.drop_path_rate {model['drop_path_rate']}: ignored, as "
                                              f"the official model ({repo}) never passes it to its blocks")
    for key in ("loss", "weight_center"):
        if key in model:
            ledger.decide(f"model.{key}", f"model.{key} {model[key]!r}: ignored, as the official fine-tuning "
                                          f"model ({repo}) does not read it (only PointGPT's pre-training model "
                                          f"does)")
    return out


def _drop_rate(model: dict, ledger: _Ledger) -> None:
    """DAPT's ``drop_rate`` (dropout in the blocks): 0 is pcpeft's behaviour, anything else cannot be mapped."""
    if "drop_rate" not in model:
        return
    rate = _number(model["drop_rate"], "model.drop_rate", ledger)
    if rate == 0:
        ledger.decide("model.drop_rate", "model.drop_rate 0: no dropout in the blocks, as pcpeft's point blocks")
    else:
        ledger.unmap("model.drop_rate", f"{rate}: pcpeft's point blocks have no dropout option (0 is used)")


# -- PEFT method ------------------------------------------------------------------------------------------------
def _peft_section(official: dict, model: dict, origin: _Origin, ledger: _Ledger) -> dict | None:
    """pcpeft's ``peft`` (None: full fine-tuning) from the model's method keys and ``optimizer.part``."""
    part = official.get("optimizer", {}).get("part") if isinstance(official.get("optimizer"), dict) else None
    if origin.method == "dapt":
        peft = _dapt(model, origin, ledger)
    elif origin.method == "idpt":
        peft = _idpt(model, ledger)
    elif origin.method == "ppt":
        peft = _ppt(model, ledger)
    elif origin.method == "pointgst":
        peft = _pointgst(model, ledger)
    elif origin.method == "most":
        peft = _most(model, origin, ledger)
    elif origin.method == "gaprompt":
        peft = _gaprompt(model, ledger)
    elif origin.method == "pointlora":
        peft = _pointlora(model, ledger)
    elif origin.repo == "ACT":
        peft = _act_transfer(model, ledger)
    elif origin.repo == "ReCon":
        peft = _recon_transfer(model, ledger)
    else:
        peft = None
    return _check_part(part, peft, origin, ledger)


def _check_part(part: Any, peft: dict | None, origin: _Origin, ledger: _Ledger) -> dict | None:
    """Reconcile ``optimizer.part`` (what the official optimiser trains) with the method; returns the peft."""
    key = "optimizer.part"
    expected = METHOD_PARTS.get(origin.method or "")
    if part is None:
        if expected is not None:
            ledger.unmap("optimizer", f"no part: the official builder would train every parameter; pcpeft's "
                                      f"{origin.method} trains what part {expected} selects (its own parameters and "
                                      f"'*cls*'; set part: {expected})")
        return peft
    if expected is not None and part == expected:
        ledger.decide(key, f"optimizer.part {part}: what the official {origin.method} optimiser trains (names "
                           f"matching its rule), as pcpeft's {origin.method}")
        return peft
    if part == "all" and peft is None:
        ledger.decide(key, "optimizer.part all: every parameter trains (full fine-tuning, peft unset)")
        return peft
    if part == "only_new" and peft is None:
        ledger.decide(key, "optimizer.part only_new: only parameters named '*cls*' train (cls token, cls "
                           "position, head) -> peft linear with train_cls_token")
        return {"method": "linear", "train_cls_token": True}
    ledger.unmap(key, f"{part!r} does not go with {origin.repo}'s "
                      f"{origin.method or 'model'}; the recipe keeps {(peft or {}).get('method', 'full fine-tuning')}")
    return peft


def _token_choice(value: Any, key: str, allowed: tuple[str, ...], default: str, ledger: _Ledger) -> str:
    """A DAPT head-input choice: ``'None'`` -> ``none``; a value pcpeft lacks is unmapped (``default`` kept)."""
    text = "none" if value in (None, "None") else str(value)
    if text in allowed:
        ledger.mark(key)
        return text
    ledger.unmap(key, f"{value!r}: pcpeft's dapt offers {', '.join(allowed)}; {default} is used")
    return default


def _dapt(model: dict, origin: _Origin, ledger: _Ledger) -> dict:
    """DAPT's options -> ``{method: dapt, rank, adapter_dropout, prompt_token, patch_token}``."""
    if origin.repo == "PointGST":
        ledger.decisions.append(f"{origin.backbone} DAPT (PointGST's GPT_Transformer_DAPT): the file holds no DAPT "
                                f"options; pcpeft's dapt defaults are used (rank 64, adapter_dropout 0.2, prompts "
                                f"mean, patches max) - check them against models/PointGPT_DAPT.py")
        return {"method": "dapt"}
    peft: dict[str, Any] = {"method": "dapt", "rank": _required(model, "rank", "model", ledger, int)}
    dropout = _number(model.get("drop_adapter_rate", 0.0), "model.drop_adapter_rate", ledger)
    peft["adapter_dropout"] = dropout
    peft["prompt_token"] = _token_choice(model.get("prompt_token"), "model.prompt_token", ("mean", "max", "none"),
                                         "mean", ledger)
    peft["patch_token"] = _token_choice(model.get("patch_token"), "model.patch_token", ("max", "none"), "max",
                                        ledger)
    ledger.decide(["model.rank", "model.drop_adapter_rate"],
                  f"DAPT: model.rank {peft['rank']} -> peft.rank, model.drop_adapter_rate {dropout} -> "
                  f"peft.adapter_dropout, model.prompt_token / patch_token -> peft.prompt_token "
                  f"{peft['prompt_token']} / patch_token {peft['patch_token']}")
    if "class_token" in model:
        if model["class_token"] in (None, "None"):
            ledger.unmap("model.class_token", "'None': pcpeft's dapt head always reads the cls token")
        else:
            ledger.decide("model.class_token", f"model.class_token {model['class_token']!r}: the head reads the cls "
                                               f"token, as pcpeft's dapt")
    return peft


def _idpt(model: dict, ledger: _Ledger) -> dict:
    """IDPT's options -> ``{method: idpt, prompt_layer, head_input}``."""
    from ...peft.prompts import HEAD_INPUTS

    peft: dict[str, Any] = {"method": "idpt", "prompt_layer": _required(model, "prompt_layer", "model", ledger, int)}
    head = model.get("cls_type", "all")
    if head in HEAD_INPUTS:
        peft["head_input"] = head
        ledger.decide(["model.prompt_layer", "model.cls_type"], f"IDPT: model.prompt_layer {peft['prompt_layer']} "
                                                                f"-> peft.prompt_layer, model.cls_type {head} -> "
                                                                f"peft.head_input")
    else:
        peft["head_input"] = "all"
        ledger.mark("model.prompt_layer")
        ledger.unmap("model.cls_type", f"{head!r}: pcpeft's idpt head inputs are {', '.join(HEAD_INPUTS)}; all is "
                                       f"used")
    module = model.get("prompt_module", "dgcnn")
    if module == "dgcnn":
        ledger.decide("model.prompt_module", "model.prompt_module dgcnn: pcpeft's idpt prompt generator is that "
                                             "DGCNN (EdgeConv, k 20)")
    else:
        ledger.unmap("model.prompt_module", f"{module!r}: pcpeft's idpt generator is the DGCNN only")
    return peft


def _ppt(model: dict, ledger: _Ledger) -> dict:
    """PPT -> ``{method: ppt}``; its second grouping must equal the first (pcpeft offers no other)."""
    for key, twin in (("prompt_group_size", "group_size"), ("prompt_num_group", "num_group")):
        if key not in model:
            continue
        if model[key] == model.get(twin):
            ledger.decide(f"model.{key}", f"model.{key} {model[key]} = model.{twin}: PPT's prompts are a second "
                                          f"grouping with the same settings, as pcpeft's ppt")
        else:
            ledger.unmap(f"model.{key}", f"{model[key]} != model.{twin} {model.get(twin)}: pcpeft's ppt groups "
                                         f"once (prompts copy the patch tokens)")
    if "type" in model:
        ledger.decide("model.type", f"model.type {model['type']!r}: ignored, as PPT's model does not read it")
    return {"method": "ppt"}


def _pointgst(model: dict, ledger: _Ledger) -> dict:
    """PointGST's options -> ``{method: pointgst, rank, local, basis: official}``."""
    peft = {"method": "pointgst", "rank": _required(model, "rank", "model", ledger, int),
            "local": _required(model, "local", "model", ledger, int), "basis": "official"}
    ledger.decide(["model.rank", "model.local"], f"PointGST: model.rank {peft['rank']} / model.local "
                                                 f"{peft['local']} -> peft.rank / peft.local; basis official (the "
                                                 f"official code's spectral basis)")
    return peft


def _most(model: dict, origin: _Origin, ledger: _Ledger) -> dict:
    """MoST's options -> ``{method: most, monarch_blocks, neighbours, eps, fusion_layers}``."""
    kind = model.get("peft_type")
    if kind is None:
        raise ledger.error("model.peft_type", "missing (MoST's runner_peft reads it; 'most' trains the MoST "
                                              "parameters)")
    if kind == "most":
        ledger.decide("model.peft_type", "model.peft_type most: runner_peft trains only the parameters named "
                                         "'*cls*' or '*monarch*' (the PointMonarch adapters, cls token and "
                                         "position, norms, head), as pcpeft's most")
    else:
        ledger.unmap("model.peft_type", f"{kind!r}: runner_peft then trains every parameter of MoST's model; "
                                        f"pcpeft's most trains its own parameters and '*cls*'")
    peft = {"method": "most", "monarch_blocks": _required(model, "monarch_nblocks", "model", ledger, int),
            "neighbours": 4, "eps": 0.05, "fusion_layers": _required(model, "fusion_layer", "model", ledger, int)}
    for key, name in (("monarch_nblocks", "monarch_blocks"), ("fusion_layer", "fusion_layers")):
        if peft[name] < 1:
            raise ledger.error(f"model.{key}", f"{peft[name]}: MoST's model needs at least 1")
    ledger.decide(["model.monarch_nblocks", "model.fusion_layer"],
                  f"MoST: model.monarch_nblocks {peft['monarch_blocks']} -> peft.monarch_blocks, model.fusion_layer "
                  f"{peft['fusion_layers']} -> peft.fusion_layers; neighbours 4 and eps 0.05 are fixed in the "
                  f"official code (PointMonarch group_size 4, IDW eps 0.05; kNN of 5 centres, itself dropped)")
    _most_limits(model, peft["fusion_layers"], origin, ledger)
    return peft


def _most_limits(model: dict, fusion: int, origin: _Origin, ledger: _Ledger) -> None:
    """What MoST's official model hard-codes: 24 blocks (fused blocks ``range(23, 0, -(24 // fusion_layer))``) and
    128 patch tokens (its smoother); pcpeft's most takes the deepest ``fusion_layers`` of any depth and group count."""
    from ...peft.most import fused_layers

    depth = next(size[1] for size, name in POINTGPT_SIZES.items() if name == origin.backbone)
    official = sorted(range(23, 0, -(24 // fusion))) if depth == 24 and fusion <= 24 else None
    ours = list(fused_layers(depth, fusion))
    if ours == official:
        ledger.decisions.append(f"MoST fuses the raw outputs of blocks {official} (range(23, 0, -24 // "
                                f"fusion_layer)), as pcpeft's most with fusion_layers {fusion}")
    elif official is not None:
        ledger.unmap("model.fusion_layer", f"{fusion}: MoST's model fuses blocks {official} (range(23, 0, -(24 // "
                                           f"fusion_layer))); pcpeft's most fuses the deepest {fusion}: {ours}")
    else:
        ledger.unmap("model.fusion_layer", f"{fusion}: MoST's model fuses blocks range(23, 0, -(24 // "
                                           f"fusion_layer)) of PointGPT-L's 24; {origin.backbone} has {depth} "
                                           f"blocks, of which pcpeft's most fuses {ours}")
    groups = _number(model.get("num_group", 128), "model.num_group", ledger, int)
    if groups != 128:
        ledger.unmap("model.num_group", f"{groups}: MoST's smoother (K_Rectify) hard-codes 128 patch tokens, so the "
                                        f"official model runs with 128 groups only; pcpeft's most smooths {groups}")


def _gaprompt(model: dict, ledger: _Ledger) -> dict:
    """GAPrompt's options -> ``{method: gaprompt, prompt_points, prompt_scale, prompt_factor, perturbation,
    propagation, prompt_depth, propagation_index, head_dropout}``; its switches must be on (pcpeft's gaprompt always
    has both parts)."""
    peft: dict[str, Any] = {"method": "gaprompt"}
    prompts = _gaprompt_switch(model, "point_prompt", "point prompts", ledger)
    peft.update(_gaprompt_part(model, {"point_number": ("prompt_points", int), "scale": ("prompt_scale", float),
                                       "factor": ("prompt_factor", float)}, prompts, ledger))
    shift = _gaprompt_switch(model, "shift_net", "ShiftNet (its head reads the shape feature)", ledger)
    peft.update(_gaprompt_part(model, {"perturbation": ("perturbation", float)}, shift, ledger))
    peft["propagation"] = _gaprompt_propagation(model, ledger)
    peft["prompt_depth"] = _required(model, "prompt_depth", "model", ledger, int)
    ledger.decide("model.prompt_depth", f"model.prompt_depth {peft['prompt_depth']} -> peft.prompt_depth")
    _gaprompt_fixed(model, ledger)
    peft.update(propagation_index="official", head_dropout=0.6)
    ledger.decisions.append("GAPrompt: runner_module trains only the names with point_prompt, shift_net, "
                            "shape_feature_mlp, adapter, cls, prompt_embeddings, prompt_cor or out_transform (no "
                            "optimizer.part), as pcpeft's gaprompt; peft.propagation_index official (the flat "
                            "indices of its propagation, batch quirk included) and head_dropout 0.6 are the official "
                            "model's")
    return peft


def _gaprompt_part(model: dict, keys: dict[str, tuple[str, type]], on: bool, ledger: _Ledger) -> dict:
    """The options of one GAPrompt part (official key -> (pcpeft key, kind)): required when the part is on; when it
    is off (the official model then never reads them) those given still set the part pcpeft keeps."""
    out = {}
    for key, (name, kind) in keys.items():
        if on or key in model:
            out[name] = _required(model, key, "model", ledger, kind)
            ledger.decide(f"model.{key}", f"GAPrompt: model.{key} {out[name]} -> peft.{name}")
    return out


def _gaprompt_propagation(model: dict, ledger: _Ledger) -> str:
    """``propagation_type`` -> ``after`` / ``before``; the replacement variants have no pcpeft counterpart."""
    key, kind = "model.propagation_type", model.get("propagation_type")
    if kind is None:
        raise ledger.error(key, "missing (GAPrompt's blocks read it)")
    side = GAPROMPT_PROPAGATION.get(kind)
    if side is not None:
        ledger.decide(key, f"model.propagation_type {kind} -> peft.propagation {side}")
        return side
    side = "before" if "before" in str(kind) else "after"
    ledger.unmap(key, f"{kind!r}: pcpeft's gaprompt propagates as {' / '.join(GAPROMPT_PROPAGATION)} only; "
                      f"{side} is used")
    return side


def _gaprompt_switch(model: dict, key: str, what: str, ledger: _Ledger) -> bool:
    """A GAPrompt on/off key: True -> the part is built; anything else is unmapped (pcpeft's gaprompt has it)."""
    if key not in model:
        raise ledger.error(f"model.{key}", "missing (GAPrompt's model reads it)")
    if model[key] in (True,):  # the official test is `== True`
        ledger.decide(f"model.{key}", f"model.{key} {model[key]!r}: GAPrompt builds its {what}, as pcpeft's "
                                      f"gaprompt")
        return True
    ledger.unmap(f"model.{key}", f"{model[key]!r}: pcpeft's gaprompt always has the {what}; it is kept")
    return False


def _gaprompt_fixed(model: dict, ledger: _Ledger) -> None:
    """GAPrompt keys whose only value pcpeft has is the official configs' (``num_tokens``, ``scaler``) and the
    keys its model never reads (``adapter_config``, ``if_half``)."""
    from ...peft.gaprompt import NUM_TOKENS

    tokens = _required(model, "num_tokens", "model", ledger, int)
    if tokens == NUM_TOKENS:
        ledger.decide("model.num_tokens", f"model.num_tokens {tokens}: GAPrompt's token prompts, as pcpeft's "
                                          f"gaprompt (its prompt_cor has {NUM_TOKENS} rows)")
    else:
        ledger.unmap("model.num_tokens", f"{tokens}: pcpeft's gaprompt has {NUM_TOKENS} token prompts (the official "
                                         f"prompt_cor has {NUM_TOKENS} rows)")
    if "scaler" not in model:
        raise ledger.error("model.scaler", "missing (GAPrompt's blocks read it)")
    if model["scaler"] not in (True,):  # the official test is `== True`
        ledger.decide("model.scaler", f"model.scaler {model['scaler']!r}: the shape feature enters with the "
                                      f"constant 0.5, as pcpeft's gaprompt")
    else:
        ledger.unmap("model.scaler", f"{model['scaler']!r}: GAPrompt then weighs the shape feature by the learned "
                                     f"scaler1 / scaler2; pcpeft's gaprompt uses the constant 0.5")
    unread = {"adapter_config": "its blocks fix the adapter's width 16 and dropout 0.1",
              "if_half": "its runner trains in fp32"}
    for key, why in unread.items():
        if key in model:
            ledger.decide(f"model.{key}", f"model.{key} {model[key]!r}: ignored, as GAPrompt's code does not read "
                                          f"it ({why})")


def _pointlora(model: dict, ledger: _Ledger) -> dict:
    """PointLoRA -> ``{method: pointlora, rank, top_k, scale2_top_k, mask_loss_weight}``: the file holds no method
    keys, the official runner and model fix them."""
    ledger.decisions.append("PointLoRA: rank 8 (alpha 8, stored but never applied), the top-32 scale-1 and top-8 "
                            "scale-2 tokens and the mask-loss weight 0.004 are fixed in the official code "
                            "(inject_pointlora2pt(gamma=8, lora_alpha=8), loss + 0.004 x mask_loss) -> peft")
    for key, fixed in (("num_group", 128), ("group_size", 32)):
        value = model.get(key)
        if value is not None and value != fixed:
            ledger.unmap(f"model.{key}", f"{value}: PointLoRA's model hard-codes its scale-1 selection grouping at "
                                         f"128 x 32 (center_divider1 and the 128 / 40 slices of its encoder); "
                                         f"pcpeft's pointlora selects from the backbone's own grouping")
    return {"method": "pointlora", "rank": 8, "top_k": 32, "scale2_top_k": 8, "mask_loss_weight": 0.004}


def _act_transfer(model: dict, ledger: _Ledger) -> dict | None:
    """ACT's ``transfer_type``: full -> full fine-tuning, mlp-3 / linear -> the head (and cls token, position)."""
    kind = model.get("transfer_type")
    if kind == "full":
        ledger.decide("model.transfer_type", "model.transfer_type full: every parameter trains (peft unset)")
        return None
    if kind in ("mlp-3", "linear"):
        ledger.decide("model.transfer_type", f"model.transfer_type {kind}: only '*cls*' parameters train -> peft "
                                             f"linear with train_cls_token")
        if kind == "linear":
            ledger.unmap("model.transfer_type", "linear: ACT's linear head is one Linear(2 x width, classes); "
                                                "pcpeft's head is the 3-layer MLP")
        return {"method": "linear", "train_cls_token": True}
    if kind in ("side", "bit-fit"):
        ledger.unmap("model.transfer_type", f"{kind!r}: ACT's {kind} tuning has no pcpeft counterpart checked; the "
                                            f"recipe fine-tunes fully")
        return None
    ledger.decide("model.transfer_type", f"model.transfer_type {kind!r}: none of ACT's values (full, linear, mlp-3, "
                                         f"side, bit-fit); its model then freezes nothing and keeps the MLP head: "
                                         f"full fine-tuning (peft unset)")
    return None


def _recon_transfer(model: dict, ledger: _Ledger) -> dict | None:
    """ReCon's ``type``: full -> full fine-tuning, mlp3 / linear -> the head (and cls token, position)."""
    kind = model.get("type")
    for key in ("img_queries", "text_queries"):
        if key in model:
            ledger.unmap(f"model.{key}", "pcpeft's recon backbone has one image and one text token; not an option")
    if kind == "full":
        ledger.decide("model.type", "model.type full: every parameter trains (peft unset)")
        return None
    if kind in ("mlp3", "linear"):
        ledger.decide("model.type", f"model.type {kind}: only '*cls*' parameters train -> peft linear with "
                                    f"train_cls_token")
        if kind == "linear":
            ledger.unmap("model.type", "linear: ReCon's linear head is one Linear(4 x width, classes); pcpeft's "
                                       "head is the 3-layer MLP")
        return {"method": "linear", "train_cls_token": True}
    if kind is not None:
        ledger.unmap("model.type", f"{kind!r}: not one of ReCon's full / linear / mlp3")
    return None


# -- data set ---------------------------------------------------------------------------------------------------
def _dataset_choice(official: dict, path: Path, ledger: _Ledger) -> _Data:
    """The data set of ``dataset.train._base_``: by the base file's name, and by its content when it exists."""
    dataset = _section(official, "dataset", ledger)
    train = dataset.get("train")
    if not isinstance(train, dict) or "_base_" not in train:
        raise ledger.error("dataset.train._base_", "missing: the official runner builds its training data from it")
    base = train["_base_"]
    if isinstance(base, dict):
        return _data_from_content(base, "dataset.train._base_ (already merged)", None, ledger)
    if not isinstance(base, str):
        raise ledger.error("dataset.train._base_", f"expected a file name, found {base!r}")
    by_name = DATASET_BASES.get(PurePath(base).stem.lower().replace("-", "_"))
    found = _find_base_file(base, path)
    if found is not None:
        content = _read_base_file(found, ledger)
        return _data_from_content(content, str(found), by_name, ledger)
    if by_name is None:
        raise ledger.error("dataset.train._base_", f"{base}: no pcpeft data set of that name (known: "
                                                   f"{', '.join(sorted(DATASET_BASES))}) and the file is not found "
                                                   f"beside the recipe")
    name, split = by_name
    official_name = {"ModelNet40": "ModelNet", "ModelNetFewShot": "ModelNetFewShot"}.get(name) or (
        "ScanObjectNN_hardest" if split == "PB_T50_RS" else "ScanObjectNN")
    content = {"NUM_CATEGORY": 10} if PurePath(base).stem.lower() == "modelnet10" else {}
    ledger.decide("dataset.train._base_", f"dataset.train._base_ {base} -> {name}{' ' + split if split else ''} "
                                          f"(by the file's name; the file is not beside the recipe, so its keys "
                                          f"are the official ones of that name)")
    return _Data(name, split, official_name, content, base)


def _find_base_file(base: str, path: Path) -> Path | None:
    """The official base file when it exists: ``base`` relative to any folder above the recipe (the official
    checkout's root), or to the working directory."""
    candidate = Path(base)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for folder in [path.parent, *path.parent.parents, Path.cwd()]:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _read_base_file(found: Path, ledger: _Ledger) -> dict:
    """The mapping of an official data-set file; a :class:`ConfigError` naming it when it is not one."""
    try:
        content = read_yaml(found)
    except ConfigError as err:
        raise ConfigError(f"{err} (dataset.train._base_ of {ledger.source})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{found}: a data-set file must be a mapping (dataset.train._base_ of {ledger.source})")
    return content


def _data_from_content(content: dict, label: str, by_name: tuple | None, ledger: _Ledger) -> _Data:
    """The data set an official base file's ``NAME`` (and ``ROOT`` / ``DATA_PATH``) means."""
    official_name = content.get("NAME")
    root = str(content.get("ROOT", content.get("DATA_PATH", ""))).rstrip("/")
    if official_name == "ScanObjectNN_hardest":
        chosen = ("ScanObjectNN", "PB_T50_RS")
    elif official_name == "ScanObjectNN":
        chosen = ("ScanObjectNN", "OBJ_ONLY" if root.endswith("main_split_nobg") else "OBJ_BG")
    elif official_name == "ModelNet":
        chosen = ("ModelNet40", None)
    elif official_name == "ModelNetFewShot":
        chosen = ("ModelNetFewShot", None)
    else:
        raise ConfigError(f"{label}: NAME {official_name!r} (dataset.train._base_ of {ledger.source}) has no pcpeft "
                          f"data set; known: ScanObjectNN_hardest, ScanObjectNN, ModelNet, ModelNetFewShot")
    how = f"NAME {official_name}" + (f", ROOT ...{root[-16:]}" if official_name == "ScanObjectNN" else "")
    if by_name is not None and by_name != chosen:
        how += f" (the content decides; its file name suggests {by_name[0]} {by_name[1] or ''})"
    ledger.decide("dataset.train._base_", f"dataset.train._base_ -> {chosen[0]}{' ' + chosen[1] if chosen[1] else ''}"
                                          f" from {label}: {how}")
    return _Data(chosen[0], chosen[1], official_name, dict(content), label)


def _dataset_section(official: dict, data: _Data, ledger: _Ledger) -> dict:
    """pcpeft's ``dataset`` section: the shipped fragment of that data set, ``npoints`` and the base file's keys."""
    fragment = load_config(RECIPES_DIR / DATASET_FRAGMENTS[(data.name, data.split)])["dataset"]
    out = dict(fragment)
    out["npoints"] = _required(official, "npoints", "", ledger, int)
    ledger.decide("npoints", f"npoints {out['npoints']} -> dataset.npoints")
    ledger.decisions.append(f"dataset.root {out['root']}: pcpeft's folder for {data.name} (the official paths are "
                            f"relative to the official checkout; set dataset.root to your copy)")
    _base_file_keys(data, out, ledger)
    _splits(official["dataset"], data, ledger)
    if data.name == "ModelNetFewShot":
        ledger.decisions.append(f"dataset way {out['way']} / shot {out['shot']} / fold {out['fold']}: the official "
                                f"runner takes them from --way/--shot/--fold; set them with --opts")
    return out


def _check_classes(num_classes: int, dataset: dict, ledger: _Ledger) -> None:
    """Say so when ``cls_dim`` is not the data set's number of classes (the official head keeps that width)."""
    classes = {"ScanObjectNN": 15, "ModelNet40": dataset.get("num_category", 40)}.get(dataset["name"])
    if classes is not None and classes != num_classes:
        ledger.decisions.append(f"model.num_classes {num_classes} kept from cls_dim although {dataset['name']} has "
                                f"{classes} classes: the official head has {num_classes} outputs, and so has this "
                                f"recipe's")


def _base_file_keys(data: _Data, out: dict, ledger: _Ledger) -> None:
    """Fold the base file's ``N_POINTS`` / ``NUM_CATEGORY`` / ``USE_NORMALS`` into ``out``; report other keys."""
    where = f"{data.base_label}"
    for key, value in data.base.items():
        if key in ("NAME", "ROOT", "DATA_PATH"):
            continue
        if key == "N_POINTS" and data.name in ("ModelNet40", "ModelNetFewShot"):
            if data.name == "ModelNet40":
                out["cache_points"] = _number(value, f"{where}: N_POINTS", ledger, int)
            ledger.decisions.append(f"{where}: N_POINTS {value} -> the points per stored cloud "
                                    f"({'dataset.cache_points' if data.name == 'ModelNet40' else 'as stored'})")
        elif key == "NUM_CATEGORY" and data.name == "ModelNet40":
            out["num_category"] = _number(value, f"{where}: NUM_CATEGORY", ledger, int)
            ledger.decisions.append(f"{where}: NUM_CATEGORY {value} -> dataset.num_category")
        elif key == "NUM_CATEGORY" and data.name == "ModelNetFewShot":
            ledger.decisions.append(f"{where}: NUM_CATEGORY {value}: the few-shot episodes draw 'way' of them")
        elif key == "USE_NORMALS" and not value:
            ledger.decisions.append(f"{where}: USE_NORMALS false: xyz only, as pcpeft's classification data sets")
        else:
            ledger.unmapped.append(f"{where}: {key}: {value!r}: pcpeft's {data.name} has no such option")


def _splits(dataset: dict, data: _Data, ledger: _Ledger) -> None:
    """Check the train / val / test subsections: their bases, subsets and ``others``."""
    expected = {"train": "train", "val": "test", "test": "test"}
    for split in SPLIT_SECTIONS:
        section = dataset.get(split)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"{ledger.source}: dataset.{split}: expected a mapping, found {section!r}")
        prefix = f"dataset.{split}"
        base = section.get("_base_")
        if split != "train" and base != dataset["train"].get("_base_"):
            ledger.unmap(f"{prefix}._base_", f"{base} differs from dataset.train._base_; pcpeft evaluates on the "
                                             f"test split of the training data set")
        ledger.mark(f"{prefix}._base_")
        others = section.get("others") or {}
        if not others:
            ledger.mark(f"{prefix}.others")
        for key, value in others.items():
            _split_option(f"{prefix}.others.{key}", key, value, expected[split], ledger)
        for key in section:
            if key not in ("_base_", "others"):
                ledger.unmap(f"{prefix}.{key}", "not a key of an official data-set subsection")
    if "val" in dataset:
        ledger.decisions.append("dataset.val (subset test): the official runner picks its best epoch on the test "
                                "split; pcpeft does the same when dataset.val_fraction is 0 and says so in "
                                "results.json")


def _split_option(key: str, name: str, value: Any, subset: str, ledger: _Ledger) -> None:
    """Account for one ``others`` key of a data-set subsection (``subset`` is the one the runner expects)."""
    if name == "subset" and value == subset:
        ledger.mark(key)
    elif name == "bs":
        ledger.decide(key, f"{key} {value}: ignored, as the official main.py overwrites it from total_bs")
    else:
        ledger.unmap(key, f"{value!r}: pcpeft builds the {subset} split of the data set with no such option")


# -- optimiser, schedule, training ------------------------------------------------------------------------------
def _optimizer_section(official: dict, origin: _Origin, ledger: _Ledger) -> dict:
    """``optimizer.kwargs.lr`` / ``weight_decay``; pcpeft's optimiser is AdamW with the official decay groups."""
    optimizer = _section(official, "optimizer", ledger)
    kind = optimizer.get("type")
    if kind == "AdamW":
        ledger.decide("optimizer.type", "optimizer.type AdamW: pcpeft's optimiser (no weight decay on 1-D "
                                        "parameters, biases and tokens, as the official add_weight_decay)")
    else:
        ledger.unmap("optimizer.type", f"{kind!r}: pcpeft's optimiser is AdamW; AdamW is used")
    kwargs = optimizer.get("kwargs")
    if not isinstance(kwargs, dict):
        raise ledger.error("optimizer.kwargs", f"the official builder needs a mapping, found {kwargs!r}")
    out = {"lr": _required(kwargs, "lr", "optimizer.kwargs", ledger),
           "weight_decay": _required(kwargs, "weight_decay", "optimizer.kwargs", ledger)}
    ledger.decide(["optimizer.kwargs.lr", "optimizer.kwargs.weight_decay"],
                  f"optimizer.kwargs lr {out['lr']} / weight_decay {out['weight_decay']} -> optimizer")
    for key in kwargs:
        if key not in ("lr", "weight_decay"):
            ledger.unmap(f"optimizer.kwargs.{key}", f"{kwargs[key]!r}: pcpeft's AdamW keeps its defaults")
    if origin.repo == "ReCon" and origin.backbone == "recon":
        ledger.unmap("optimizer", "ReCon's builder gives every parameter named '*cls*' 10x the learning rate; "
                                  "pcpeft has one learning rate")
    ledger.mark("optimizer.part")  # decided with the method (_check_part)
    return out


def _scheduler_section(official: dict, origin: _Origin, ledger: _Ledger) -> dict:
    """``max_epoch`` and ``CosLR`` ``epochs`` / ``initial_epochs`` -> epochs, cosine length, warm-up; the floors
    are the official builder's fixed ones."""
    epochs = _required(official, "max_epoch", "", ledger, int)
    ledger.decide("max_epoch", f"max_epoch {epochs} -> scheduler.epochs (the official loop also runs an epoch "
                               f"numbered {epochs}, at the floor lr; pcpeft stops after {epochs})")
    min_lr = COSLR_MIN_LR.get(origin.repo, DEFAULT_MIN_LR)
    out = {"epochs": epochs, "warmup_epochs": 0, "warmup_lr": COSLR_WARMUP_LR, "min_lr": min_lr}
    scheduler = _section(official, "scheduler", ledger)
    kwargs = scheduler.get("kwargs") if isinstance(scheduler.get("kwargs"), dict) else {}
    if scheduler.get("type") != "CosLR":
        ledger.unmap("scheduler", f"type {scheduler.get('type')!r}: pcpeft schedules are cosine with warm-up; a "
                                  f"cosine over max_epoch without warm-up is used")
        return out
    cosine = _required(kwargs, "epochs", "scheduler.kwargs", ledger, int)
    out["warmup_epochs"] = _required(kwargs, "initial_epochs", "scheduler.kwargs", ledger, int)
    if cosine != epochs:
        out["cosine_epochs"] = cosine
    ledger.decide(["scheduler.type", "scheduler.kwargs.epochs", "scheduler.kwargs.initial_epochs"],
                  f"scheduler CosLR epochs {cosine} / initial_epochs {out['warmup_epochs']} -> scheduler "
                  f"{'cosine_epochs ' + str(cosine) + ' / ' if cosine != epochs else ''}warmup_epochs "
                  f"{out['warmup_epochs']}; warmup_lr {COSLR_WARMUP_LR} and min_lr {min_lr} are the fixed values of "
                  f"{origin.repo}'s tools/builder.py")
    for key, value in kwargs.items():
        if key == "warming_up_init_lr":
            ledger.unmap(f"scheduler.kwargs.{key}", f"{value!r}: the official CosLR builders do not read it "
                                                    f"(warm-up starts at {COSLR_WARMUP_LR}); set "
                                                    f"scheduler.warmup_lr to use it")
        elif key not in ("epochs", "initial_epochs"):
            ledger.unmap(f"scheduler.kwargs.{key}", f"{value!r}: the official CosLR builders do not read it")
    return out


def _train_section(official: dict, origin: _Origin, ledger: _Ledger) -> dict:
    """``total_bs``, ``step_per_update``, ``grad_norm_clip`` and the loss terms the repository's runner uses."""
    out: dict[str, Any] = {"batch_size": _required(official, "total_bs", "", ledger, int)}
    ledger.decide("total_bs", f"total_bs {out['batch_size']} -> train.batch_size (over all processes, as the "
                              f"official main.py splits it)")
    steps = official.get("step_per_update")
    if steps == 1:
        ledger.decide("step_per_update", "step_per_update 1: one optimiser step per batch, as pcpeft")
    elif steps is not None:
        ledger.unmap("step_per_update", f"{steps!r}: pcpeft has no gradient accumulation (one step per batch)")
    if "grad_norm_clip" in official and official["grad_norm_clip"] is not None:
        out["grad_clip"] = _number(official["grad_norm_clip"], "grad_norm_clip", ledger)
        ledger.decide("grad_norm_clip", f"grad_norm_clip {out['grad_clip']} -> train.grad_clip")
    else:
        out["grad_clip"] = None
        ledger.decide("grad_norm_clip", "no grad_norm_clip: the official runner does not clip -> train.grad_clip "
                                        "null")
    out["label_smoothing"] = 0.0
    out.update(_loss_terms(origin, ledger))
    if origin.repo == "GAPrompt" and "task" in official:
        _gaprompt_task(official["task"], ledger)
    return out


def _gaprompt_task(task: Any, ledger: _Ledger) -> None:
    """GAPrompt's top-level ``task``: its main.py trains only when it is ``classification``."""
    if task == "classification":
        ledger.decide("task", "task 'classification': GAPrompt's main.py runs its classification fine-tuning, as "
                              "this recipe")
    else:
        ledger.unmap("task", f"{task!r}: GAPrompt's main.py trains only when task is 'classification'; this recipe "
                             f"fine-tunes a classifier")


def _loss_terms(origin: _Origin, ledger: _Ledger) -> dict:
    """The runner's loss beyond cross-entropy: PointGPT's generator term (MoST's too), PointLoRA's mask loss,
    Point-BERT's optional smoothing."""
    if origin.repo in ("PointGPT", "MoST"):
        ledger.decisions.append(f"train.aux_loss_weight 1.0: {origin.repo}'s runner minimises CE + 3 x the "
                                f"generator's Chamfer loss; pcpeft's pointgpt weighs its auxiliary loss by 3 itself")
        return {"aux_loss_weight": 1.0}
    if origin.repo == "PointLoRA":
        ledger.decisions.append("train.aux_loss_weight 1.0: PointLoRA's runner minimises CE + 0.004 x the mask "
                                "loss; pcpeft's pointlora weighs its mask loss by peft.mask_loss_weight itself")
        return {"aux_loss_weight": 1.0}
    if origin.backbone.startswith("pointgpt"):
        ledger.decisions.append("train.aux_loss_weight 0.0: PointGST's runner minimises the cross-entropy only "
                                "(no generator loss)")
        return {"aux_loss_weight": 0.0}
    if origin.repo == "Point-BERT":
        ledger.decisions.append("train.label_smoothing 0.0: Point-BERT's smoothing (eps 0.2) is the command-line "
                                "switch --label_smoothing, off by default and not in the file; set "
                                "train.label_smoothing=0.2 if you pass it")
    return {}


def _augmentation_section(origin: _Origin, data: _Data, path: Path, ledger: _Ledger) -> dict:
    """The training augmentation of the repository's runner (not in the file)."""
    scan_named = "scan" in path.name.lower()
    if origin.repo == "ACT":
        rotate, why = True, "ACT's runner rotates every data set"
    elif origin.repo == "GAPrompt":
        ledger.decisions.append("augmentation rotate about y, one angle per batch: GAPrompt's runner_module rotates "
                                "every data set, ModelNet included, with one matrix per call (per batch)")
        return {"scale_translate": False, "rotate": True, "up_axis": "y", "rotate_per": "batch"}
    elif origin.repo in ("ReCon", "PPT", "MoST"):
        rotate = data.official_name != "ModelNet"
        why = f"{origin.repo}'s runner scales and translates when the base NAME is ModelNet, else rotates"
    elif origin.repo == "IDPT":
        rotate = scan_named
        why = f"IDPT's runner rotates when its --config path holds 'scan' (file name {path.name!r}), else scales " \
              f"and translates"
    elif origin.repo == "PointGST" and origin.place in ("act", "recon"):
        rotate = scan_named
        why = f"PointGST's runner rotates for its act / recon configs whose path holds 'scan' (file name " \
              f"{path.name!r}), else scales and translates"
    else:
        rotate, why = False, f"{origin.repo}'s runner scales and translates"
    ledger.decisions.append(f"augmentation {'rotate about y' if rotate else 'scale and translate'}: {why}")
    return {"scale_translate": not rotate, "rotate": rotate, "up_axis": "y"}


def _batch_dependent(train: dict, test: dict, origin: _Origin, ledger: _Ledger) -> None:
    """For a method whose logits depend on the batch: the official validation batch and fp32 training."""
    factor = BATCH_DEPENDENT.get(origin.method or "")
    if factor is None:
        return
    test["batch_size"] = factor * train["batch_size"]
    train["amp"] = False
    ledger.decisions.append(f"test.batch_size {test['batch_size']} and train.amp false: {origin.method}'s logits "
                            f"depend on the other clouds of the batch, so the recipe evaluates with the official "
                            f"validation batch ({factor} x total_bs, {origin.repo}'s main.py without a launcher) and "
                            f"trains in fp32, as the official runner")


def _base_recipe(ledger: _Ledger) -> dict:
    """pcpeft's fine-tuning schedule fragment: the settings an official file does not speak of (workers, AMP,
    test batch, votes)."""
    fragment = "schedules/finetune.yaml"
    ledger.decisions.append(f"train.num_workers / amp / eval_every and test.*: pcpeft's {fragment} (the official "
                            f"files do not set them)")
    return load_config(RECIPES_DIR / fragment)


def _account_for_the_rest(official: dict, ledger: _Ledger) -> None:
    """Every key of the file not yet accounted for is unmapped (or, for known inert keys, a decision)."""
    for key, value in _leaves(official):
        if ledger.is_handled(key):
            continue
        if key == "consider_metric":
            ledger.decide(key, f"consider_metric {value!r}: ignored, as the official fine-tuning runners rank "
                               f"epochs by accuracy (only the pre-training runner reads it)")
        elif key.startswith("model."):
            ledger.unmap(key, f"{value!r}: not an option of the official model this file means, nor of pcpeft's")
        else:
            ledger.unmap(key, f"{value!r}: not a key the translator knows of the official dialect")


def _leaves(config: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of ``config``; a data-set ``_base_`` mapping counts as one leaf."""
    out = []
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and key != "_base_":
            out += _leaves(value, dotted + ".")
        else:
            out.append((dotted, value))
    return out


# -- validating and matching ------------------------------------------------------------------------------------
def _validate(recipe: dict, source: str) -> Settings:
    """The translated recipe validated by the schema (a :class:`ConfigError` naming ``source`` otherwise)."""
    from .schema import validate_recipe

    return validate_recipe(recipe, f"{source} (translated)")


def _comparable(settings: Settings) -> dict:
    """The settings that define a run (what ``matches`` compares): model and PEFT options with their defaults
    filled in, the data set, optimiser, schedule, batch, clipping, loss terms and augmentation."""
    from .schema import _model_schema

    schema = _model_schema(settings.model_name)
    model = schema.model_validate(settings.model).model_dump() if schema is not None else dict(settings.model)
    train = settings.train
    return {"task": settings.task, "model": model, "dataset": settings.dataset.model_dump(),
            "peft": _peft_filled(settings.peft),
            "optimizer": settings.optimizer.model_dump(), "scheduler": settings.scheduler.model_dump(),
            "train": {"batch_size": train.batch_size, "grad_clip": train.grad_clip,
                      "label_smoothing": train.label_smoothing, "aux_loss_weight": train.aux_loss_weight},
            "augmentation": settings.augmentation.model_dump()}


def _peft_filled(peft: Any) -> Any:
    """A PEFT spec as its configs' fields (defaults filled in); None (full fine-tuning) stays None."""
    if peft is None:
        return None
    from ...peft import resolve_configs

    try:
        configs = resolve_configs(peft)
    except ValueError:
        return peft
    return [(type(c).__name__, dataclasses.asdict(c)) for c in configs]


@functools.lru_cache(maxsize=1)
def _shipped_settings() -> tuple[tuple[str, dict], ...]:
    """(name, comparable settings) of every shipped recipe (fragments left out) that validates."""
    from .schema import validate_recipe

    out = []
    for name in shipped_recipes():
        parts = PurePath(name).parts
        if parts[0] in FRAGMENT_FOLDERS or parts[-1] == "model":
            continue
        try:
            settings = validate_recipe(load_config(RECIPES_DIR / f"{name}.yaml"), name)
        except ConfigError:
            continue
        out.append((name, _comparable(settings)))
    return tuple(out)


def _matching_shipped(comparable: dict) -> str | None:
    """The first shipped recipe (sorted by name) whose settings equal ``comparable``, else None."""
    for name, settings in _shipped_settings():
        if settings == comparable:
            return name
    return None


def shipped_differences(translation: Translation, name: str) -> list[str]:
    """``"setting: shipped X, translated Y"`` for each setting in which the shipped recipe ``name`` differs from
    ``translation``'s recipe (empty when they are the same)."""
    comparable = _comparable(_validate(translation.recipe, translation.source))
    for shipped_name, settings in _shipped_settings():
        if shipped_name == name:
            return _differences(settings, comparable)
    raise ConfigError(f"no shipped recipe named {name!r} (fragments under {', '.join(FRAGMENT_FOLDERS)} are not "
                      f"recipes)")


def _report_nearest(comparable: dict, ledger: _Ledger, most: int = 3) -> None:
    """Name, in ``decisions``, the shipped recipe of the same backbone and data set that differs from
    ``comparable`` in the fewest settings (at most ``most``), and how."""
    same_row = [(name, _differences(settings, comparable)) for name, settings in _shipped_settings()
                if settings["model"].get("name") == comparable["model"].get("name")
                and settings["dataset"].get("name") == comparable["dataset"].get("name")
                and settings["dataset"].get("split") == comparable["dataset"].get("split")]
    near = sorted((len(diff), name, diff) for name, diff in same_row if len(diff) <= most)
    if not near:
        ledger.decisions.append("no shipped recipe has the same settings")
        return
    _, name, diff = near[0]
    ledger.decisions.append(f"no shipped recipe has the same settings; the nearest, {name}, differs in: "
                            + "; ".join(diff))


def _differences(left: Any, right: Any, prefix: str = "") -> list[str]:
    """``"dotted.key: shipped X, translated Y"`` for every leaf where ``left`` (shipped) and ``right`` differ."""
    if isinstance(left, dict) and isinstance(right, dict):
        out = []
        for key in sorted(set(left) | set(right), key=str):
            out += _differences(left.get(key), right.get(key), f"{prefix}{key}.")
        return out
    return [] if left == right else [f"{prefix.rstrip('.')}: shipped {left!r}, translated {right!r}"]


__all__ = ["Translation", "is_official_recipe", "translate_official_recipe", "shipped_differences"]
