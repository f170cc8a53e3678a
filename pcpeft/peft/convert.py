"""Official fine-tuned files of DAPT / IDPT / PPT / PointGST / MoST / GAPrompt / PointLoRA <-> pcpeft adapter
folders (``save_pretrained``).

``official_to_adapter``: build the backbone and method, load the official file strictly (backbone and method),
write the adapter folder (trained tensors, the BatchNorm statistics the official runner updates, the frozen
backbone's fingerprint) plus ``official.json`` (key order, ``module.`` prefix, epoch and metrics), so that the way
back restores the file exactly.

``adapter_to_official``: rebuild the model on a backbone loaded from ``backbone_file`` (the pre-training file the
method started from, or any file holding the same frozen weights: the fingerprint check refuses others), load the
adapter and write ``{'base_model', 'epoch', 'metrics', 'best_metrics'}`` under the official key names. The
optimiser state of an official file is not carried (evaluation and the official ``load_model`` do not need it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..models.checkpoints import CheckpointError, extract_state_dict, load_checkpoint, read_checkpoint_file
from ..models.registry import create_model
from . import get_peft_model
from .base import CONFIG_FILE, PeftModel

OFFICIAL_META = "official.json"


def _plain(value: Any) -> Any:
    """JSON-able copy of epoch / metrics values (tensors become numbers or lists)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def official_to_adapter(official: str | os.PathLike, out_dir: str | os.PathLike, peft: Any,
                        model: str = "point_mae", model_options: dict | None = None) -> Path:
    """Official fine-tuned file -> pcpeft adapter folder. ``num_classes`` defaults to the file's head size."""
    raw = read_checkpoint_file(official)
    state = extract_state_dict(raw, str(official))
    options = dict(model_options or {})
    if "num_classes" not in options:
        head = [k for k in state  # PointGPT's official files keep the head under blocks.
                if k.removeprefix("blocks.").startswith("cls_head_finetune.") and k.endswith(".weight")]
        if head:
            last = max(head, key=lambda k: int(k.removeprefix("blocks.").split(".")[1]))
            options["num_classes"] = state[last].shape[0]
    peft_model = get_peft_model(create_model(model, **options), peft)
    report = load_checkpoint(peft_model, official, strict=True)
    out = peft_model.save_pretrained(out_dir)
    wrapped = raw.get("base_model", raw) if isinstance(raw, dict) else raw
    keys = [k for k, v in wrapped.items() if isinstance(v, torch.Tensor)]
    meta = {"layout": report.layout, "model": model, "model_options": options,
            "module_prefix": bool(keys) and all(k.startswith("module.") for k in keys),
            "key_order": [k[len("module."):] if k.startswith("module.") else k for k in keys],
            **{name: _plain(raw.get(name)) for name in ("epoch", "metrics", "best_metrics") if isinstance(raw, dict)}}
    (out / OFFICIAL_META).write_text(json.dumps(meta, indent=1))
    return out


def adapter_folder(path: str | os.PathLike) -> Path:
    """An adapter folder, or a pcpeft run folder holding ``adapter-best/``."""
    path = Path(path)
    for candidate in (path, path / "adapter-best"):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise CheckpointError(f"{path} is neither an adapter folder nor a run folder with adapter-best/")


def adapter_to_official(adapter: str | os.PathLike, out_file: str | os.PathLike, backbone_file: str | os.PathLike,
                        model: str | None = None, model_options: dict | None = None,
                        module_prefix: bool | None = None) -> Path:
    """pcpeft adapter / run folder -> official fine-tuned file (see the module docstring)."""
    folder = adapter_folder(adapter)
    config = json.loads((folder / CONFIG_FILE).read_text())
    meta_path = folder / OFFICIAL_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    architecture = dict(config.get("architecture") or {})
    legacy_name = architecture.pop("variant", None)  # folders written before the typed backbone options
    name = model or meta.get("model") or config.get("model") or legacy_name or "point_mae"
    options = {**architecture, **meta.get("model_options", {}), **(model_options or {})}
    backbone = create_model(name, **options)
    load_checkpoint(backbone, backbone_file)
    peft_model = PeftModel.from_pretrained(backbone, folder)
    state = peft_model.official_state_dict()
    order = [k for k in meta.get("key_order", []) if k in state]
    state = {k: state[k] for k in order + [k for k in state if k not in set(order)]}
    prefix = meta.get("module_prefix", False) if module_prefix is None else module_prefix
    payload = {"base_model": {("module." if prefix else "") + k: v.detach().clone() for k, v in state.items()},
               "epoch": meta.get("epoch", -1), "metrics": meta.get("metrics") or {},
               "best_metrics": meta.get("best_metrics") or {}}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, out_file)
    return out_file
