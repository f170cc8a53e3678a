"""Building the model a run trains or a tool evaluates: backbone + pretrained weights + PEFT, with every key of a
``--ckpts`` file checked against the model before anything trains.

A pretrained file must fit the backbone. The one accepted difference is the classification head of a fine-tuned
file with another class count: it is dropped and the drop is logged. Anything else (another width or depth, keys
the model lacks) stops with one line naming the file, its first key that does not fit (shapes in file and model)
and the recipe keys to change, unless ``allow_partial_load`` says a partial load is wanted.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from ...errors import UsageError
from ...models.checkpoints import (
    CheckpointError,
    LoadReport,
    extract_state_dict,
    load_checkpoint_object,
    map_reference_keys,
    read_checkpoint_file,
)
from ...models.registry import create_model
from ...peft import PeftModel, get_peft_model
from ..recipe.schema import Settings, as_settings, recipe_section

LOG = logging.getLogger("pcpeft")


def create_backbone(settings: Settings):
    return create_model(settings.model_name, **settings.model_options)


def _head_prefix(backbone) -> str:
    return f"{getattr(backbone, 'classifier_name', 'cls_head_finetune')}."


def load_pretrained(backbone, ckpts: str, allow_partial: bool = False) -> LoadReport:
    """Load ``ckpts`` into ``backbone``; refuse (CheckpointError) keys that do not fit, except a head of another
    class count (dropped, logged) or when ``allow_partial`` is set (logged as a warning)."""
    raw = read_checkpoint_file(ckpts)
    head = _head_prefix(backbone)
    state = extract_state_dict(raw, str(ckpts))
    own = backbone.state_dict()
    convert = getattr(backbone, "convert_checkpoint_state", None)
    mapped = (convert(state) if convert else map_reference_keys(state))[1]
    classes = getattr(backbone, "num_classes", None)
    other_head = [k for k, v in mapped.items() if k.startswith(head) and k in own and v.shape != own[k].shape
                  and own[k].shape[0] == classes and v.shape[1:] == own[k].shape[1:]]  # the logits layer only
    if other_head:
        raw = {k: v for k, v in state.items() if not _maps_to_head(k, head)}
        LOG.info(f"{ckpts}: its classification head has another class count ({len(other_head)} tensors, e.g. "
                 f"{other_head[0]} {list(mapped[other_head[0]].shape)} vs {list(own[other_head[0]].shape)}); "
                 f"the head is dropped and trained from scratch")
    report = load_checkpoint_object(backbone, raw, ckpts, strict=False)
    if other_head:
        report.missing = [k for k in report.missing if not k.startswith(head)]
        report.expected_absent.setdefault("classification head of another class count, trained from scratch",
                                          [k for k in own if k.startswith(head)])
    if not report.ok:
        if not allow_partial:
            raise misfit_error(ckpts, backbone, report, mapped, partial_load_flag=True)
        LOG.warning(f"--allow_partial_load: training from a PARTIAL load of {ckpts} "
                    f"({len(report.problems())} keys do not fit)")
    return report


_BLOCK_KEY = re.compile(r"^blocks\.(?:blocks\.)?(\d+)\.")
_WIDTH_KEYS = ("trans_dim", "embed_dim")


def file_architecture(state: dict[str, torch.Tensor], backbone) -> dict[str, int]:
    """The model-section values (``trans_dim`` / ``embed_dim``, ``encoder_dims``, ``depth``) a file's tensors,
    already under our key names, imply; only those the backbone's config has and the shapes tell."""
    config = getattr(backbone, "config", None)
    found: dict[str, int] = {}
    width_tensor = state.get("norm.weight", state.get("cls_token"))
    if width_tensor is not None and width_tensor.dim() >= 1:
        found.update({key: int(width_tensor.shape[-1]) for key in _WIDTH_KEYS if hasattr(config, key)})
    blocks = {int(match.group(1)) for key in state if (match := _BLOCK_KEY.match(key))}
    if blocks and hasattr(config, "depth"):
        found["depth"] = max(blocks) + 1
    if hasattr(config, "encoder_dims"):
        if "reduce_dim.weight" in state:
            found["encoder_dims"] = int(state["reduce_dim.weight"].shape[1])
        elif "trans_dim" in found and not hasattr(backbone, "reduce_dim"):
            found["encoder_dims"] = found["trans_dim"]
    return found


def first_misfit(report: LoadReport, state: dict[str, torch.Tensor], backbone) -> str:
    """The first key that does not fit, with its shape in the file and in the model (shape mismatches first)."""
    own = backbone.state_dict()
    if report.shape_mismatches:
        key, in_file, in_model = report.shape_mismatches[0]
        return f"{key} is {list(in_file)} in the file but {list(in_model)} in the model"
    if report.unexpected:
        key = report.unexpected[0]
        return f"{key} {list(state[key].shape) if key in state else ''} is in the file but not in the model"
    key = report.missing[0]
    return f"{key} {list(own[key].shape) if key in own else ''} of the model is missing from the file"


def misfit_error(ckpts: str | Path, backbone, report: LoadReport, state: dict[str, torch.Tensor],
                 partial_load_flag: bool = False) -> CheckpointError:
    """One line: the file, its first key that does not fit (shapes in file and model), how many more, and the
    recipe keys (``model.depth``, ``model.trans_dim``, ...) to set to the file's values."""
    config = getattr(backbone, "config", None)
    name = getattr(backbone, "registered_name", None) or type(backbone).__name__
    more = len(report.problems()) - 1
    differs = {key: value for key, value in file_architecture(state, backbone).items()
               if getattr(config, key, value) != value}
    if differs:
        settings = ", ".join(f"model.{key}: {value}" for key, value in differs.items())
        opts = " ".join(f"model.{key}={value}" for key, value in differs.items())
        fix = f"the file is another model: set {settings} in the recipe (--opts {opts})"
    else:
        fix = "set the recipe's model section to the file's architecture (another width, depth or backbone?)"
    partial = ", or pass --allow_partial_load to train from a partial load" if partial_load_flag else ""
    first = first_misfit(report, state, backbone) + (f" (+{more} more keys)" if more > 0 else "")
    return CheckpointError(f"{ckpts} does not fit the model {name} of this recipe: {first}; {fix}{partial}")


def _maps_to_head(key: str, head: str) -> bool:
    stripped = key.replace("module.", "")
    if stripped.startswith("base_model."):
        stripped = stripped[len("base_model."):]
    return stripped.startswith(head)


def build_model(settings: Settings | dict, ckpts: str | None, peft: Any, allow_partial: bool = False
                ) -> tuple[PeftModel, LoadReport | None]:
    """Backbone from the recipe's ``model``, pretrained weights from ``ckpts``, PEFT from ``peft`` (default full)."""
    settings = as_settings(settings)
    backbone = create_backbone(settings)
    report = load_pretrained(backbone, ckpts, allow_partial) if ckpts else None
    return get_peft_model(backbone, peft if peft is not None else "full"), report


def _run_record(adapter: str) -> dict:
    """The ``run`` section of the config.yaml of the run an adapter folder belongs to ({} when there is none)."""
    path = Path(adapter).resolve().parent / "config.yaml"
    if not path.is_file():
        return {}
    try:
        return recipe_section(yaml.safe_load(path.read_text()), "run")
    except yaml.YAMLError:
        return {}


def load_for_test(settings: Settings | dict, ckpts: str | None, adapter: str | None, device: torch.device
                  ) -> PeftModel:
    """Model for ``tools/test.py``: a pcpeft training checkpoint, an adapter folder on a pretrained backbone (or on
    the random initialisation its run started from), or an official fine-tuned checkpoint."""
    settings = as_settings(settings)
    from .seeding import seed_everything

    if adapter:
        record = _run_record(adapter)
        if not ckpts and record and record.get("ckpts"):
            raise UsageError(f"{adapter} was trained on the backbone {record['ckpts']}: pass that file with "
                                  f"--ckpts")
        if not ckpts and record:
            seed_everything(int(record.get("seed", 0)))  # the run's random initialisation, re-created
            LOG.info(f"{adapter}: its run started from a random initialisation (seed {record.get('seed', 0)}); "
                     f"re-creating it (checked against the adapter's backbone fingerprint)")
        backbone = create_backbone(settings)
        if ckpts:
            LOG.info(str(load_checkpoint_object(backbone, read_checkpoint_file(ckpts), ckpts)))
        return PeftModel.from_pretrained(backbone, adapter).to(device)
    if ckpts is None:
        raise UsageError("tools/test.py needs --ckpts (a fine-tuned checkpoint) or --adapter")
    backbone = create_backbone(settings)
    state = read_checkpoint_file(ckpts)
    if isinstance(state, dict) and "peft" in state and state.get("model") is not None:
        raise UsageError(f"{ckpts} holds adapter weights only: pass the pretrained backbone with --ckpts and "
                              f"the adapter folder (adapter-best/) with --adapter")
    report = load_checkpoint_object(backbone, state, ckpts, strict=False)
    if not report.ok:
        convert = getattr(backbone, "convert_checkpoint_state", None)
        tensors = extract_state_dict(state, str(ckpts))
        raise misfit_error(ckpts, backbone, report, (convert(tensors) if convert else map_reference_keys(tensors))[1])
    LOG.info(str(report))
    return get_peft_model(backbone, "full").to(device)
