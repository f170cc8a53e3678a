"""Reading an adapter folder (``save_pretrained`` layout) with every check done before the backbone is touched.

Order of checks, each with its own message:

1. the files: ``adapter_config.json`` is valid JSON of the expected shape, ``adapter_model.safetensors`` is a
   readable safetensors file;
2. the config: every saved method is known and its fields valid;
3. the architecture: the backbone's class and ``architecture()`` equal the saved ones (names every field that
   differs);
4. the weights: on a copy of the backbone, the frozen-weights fingerprint equals the saved one, and the tensor
   names and shapes equal what the methods create.

Only then are the methods injected into the caller's backbone and the tensors loaded.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..models.checkpoints import CheckpointError

if TYPE_CHECKING:
    from .base import PeftModel


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is not a readable adapter config (invalid JSON: {err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("configs"), list) or "backbone_fingerprint" not in meta:
        raise CheckpointError(f"{path} is not an adapter config written by save_pretrained (it needs 'configs' and "
                              f"'backbone_fingerprint')")
    return meta


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from None


def _architecture_difference(backbone: nn.Module, meta: dict) -> str | None:
    saved_class, saved_arch = meta.get("backbone"), meta.get("architecture") or {}
    if saved_class and saved_class != type(backbone).__name__:
        return f"the adapter was trained on a {saved_class}, this backbone is a {type(backbone).__name__}"
    arch = getattr(backbone, "architecture", lambda: {})()
    differing = [k for k in sorted(set(saved_arch) | set(arch))
                 if k in saved_arch and k in arch and json.loads(json.dumps(arch[k], default=str)) != saved_arch[k]]
    if differing:
        return "the architecture differs: " + ", ".join(f"{k} saved {saved_arch[k]!r}, here {arch[k]!r}"
                                                        for k in differing)
    return None


def load_adapter(cls: type["PeftModel"], backbone: nn.Module, directory: str | os.PathLike) -> "PeftModel":
    """``PeftModel.from_pretrained``: see the module docstring for the order of checks."""
    from .base import config_from_dict

    directory = Path(directory)
    config_path, weights_path = directory / "adapter_config.json", directory / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"adapter file not found: {path}")
    meta = _read_meta(config_path)
    state = _read_weights(weights_path)
    try:
        configs = [config_from_dict(c) for c in meta["configs"]]
    except (TypeError, AttributeError) as err:
        raise CheckpointError(f"{config_path}: invalid method config ({err})") from None
    difference = _architecture_difference(backbone, meta)
    if difference:
        raise CheckpointError(f"{directory}: {difference}; build the backbone as the adapter's run did")
    trial = cls(copy.deepcopy(backbone), [copy.deepcopy(c) for c in configs])
    found = trial.backbone_fingerprint()
    if found != meta["backbone_fingerprint"]:
        raise CheckpointError(
            f"{directory}: same architecture, but the backbone's frozen weights differ from those the adapter was "
            f"trained on (fingerprint {found[:12]} != saved {meta['backbone_fingerprint'][:12]}); load the same "
            f"pretrained checkpoint first")
    expected = {k: tuple(v.shape) for k, v in trial.adapter_state_dict().items()}
    methods = [c.get("method") for c in meta["configs"]]
    if set(state) != set(expected):
        raise CheckpointError(
            f"{weights_path}: its tensors do not match the methods {methods}: missing "
            f"{sorted(set(expected) - set(state))[:5]}, unexpected {sorted(set(state) - set(expected))[:5]}")
    wrong = [(k, tuple(v.shape), expected[k]) for k, v in state.items() if tuple(v.shape) != expected[k]]
    if wrong:
        raise CheckpointError(f"{weights_path}: tensor shapes do not match the methods {methods}: "
                              + ", ".join(f"{k} file {list(a)} vs model {list(b)}" for k, a, b in wrong[:5]))
    del trial
    model = cls(backbone, configs)
    model.load_state_dict(state, strict=False)
    return model
