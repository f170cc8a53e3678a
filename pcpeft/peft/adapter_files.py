"""Reading an adapter folder (``save_pretrained`` layout) with every check done before the backbone is touched.

Order of checks, each with its own message naming the file:

1. the files: ``adapter_config.json`` is valid JSON of the expected shape, ``adapter_model.safetensors`` is a
   readable safetensors file;
2. the config: every saved method is known and its fields valid;
3. the architecture: the backbone's class and ``architecture()`` equal the saved ones (names every field that
   differs);
4. the tensors: the methods, injected into a copy of the backbone on the meta device (no memory, and at most
   :func:`~pcpeft.models.checkpoints.build_budget` torch calls), create exactly the file's tensor names, shapes and
   kinds of dtype - so a config asking for layers far larger than the file holds is refused before they exist;
5. the weights: on a copy of the backbone, the frozen-weights fingerprint equals the saved one.

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

from ..errors import UserError
from ..models.checkpoints import CheckpointError, build_budget, build_on_meta, first_line, meta_copy, same_kind

if TYPE_CHECKING:
    from .base import PeftModel


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:  # ValueError: JSON, huge numbers
        raise CheckpointError(f"{path} is not a readable adapter config (invalid JSON: {first_line(err)})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("configs"), list) or "backbone_fingerprint" not in meta:
        raise CheckpointError(f"{path} is not an adapter config written by save_pretrained (it needs 'configs' and "
                              f"'backbone_fingerprint')")
    wrong = [(key, kind) for key, kind in (("backbone_fingerprint", str), ("architecture", (dict, type(None))),
                                           ("backbone", (str, type(None)))) if not isinstance(meta.get(key), kind)]
    if wrong or not all(isinstance(c, dict) for c in meta["configs"]):
        key = wrong[0][0] if wrong else "configs"
        raise CheckpointError(f"{path}: {key!r} has the wrong type ({type(meta.get(key)).__name__}); "
                              f"save_pretrained writes a string fingerprint, a dict architecture and a list of "
                              f"method dicts")
    return meta


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from None


def _method_configs(meta: dict, path: Path) -> list:
    """The saved method configs; a :class:`CheckpointError` naming ``path`` for an unknown method or field."""
    from .base import config_from_dict

    try:
        return [config_from_dict(c) for c in meta["configs"]]
    except (UserError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path}: invalid method config ({first_line(err, 300)})") from None


def _check_tensors(cls: type["PeftModel"], backbone: nn.Module, configs: list, meta: dict,
                   state: dict[str, torch.Tensor], config_path: Path, weights_path: Path) -> None:
    """Inject the methods into a meta-device copy of ``backbone`` and compare the tensors they create with the
    file's (names, shapes, kinds of dtype)."""
    methods = [c.get("method") for c in meta["configs"]]
    try:
        trial = build_on_meta(lambda: cls(meta_copy(backbone), [copy.deepcopy(c) for c in configs]),
                              build_budget(len(state)))
        expected = {k: (tuple(v.shape), v.dtype) for k, v in trial.adapter_state_dict().items()}
    except Exception as err:  # noqa: BLE001 - the config's values decide what the methods build
        raise CheckpointError(f"{config_path}: the methods {methods} cannot be built on this backbone "
                              f"({type(err).__name__}: {first_line(err, 300)})") from None
    if set(state) != set(expected):
        raise CheckpointError(
            f"{weights_path}: its tensors do not match the methods {methods}: missing "
            f"{sorted(set(expected) - set(state))[:5]}, unexpected {sorted(set(state) - set(expected))[:5]}")
    wrong = [(k, tuple(v.shape), expected[k][0]) for k, v in state.items()
             if tuple(v.shape) != expected[k][0] or not same_kind(v.dtype, expected[k][1])]
    if wrong:
        raise CheckpointError(f"{weights_path}: tensor shapes or dtypes do not match the methods {methods}: "
                              + ", ".join(f"{k} file {state[k].dtype} {list(a)} vs model {expected[k][1]} {list(b)}"
                                          for k, a, b in wrong[:5]))


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
    directory = Path(directory)
    config_path, weights_path = directory / "adapter_config.json", directory / "adapter_model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"adapter file not found: {path}")
    meta = _read_meta(config_path)
    state = _read_weights(weights_path)
    configs = _method_configs(meta, config_path)
    difference = _architecture_difference(backbone, meta)
    if difference:
        raise CheckpointError(f"{directory}: {difference}; build the backbone as the adapter's run did")
    _check_tensors(cls, backbone, configs, meta, state, config_path, weights_path)
    trial = cls(copy.deepcopy(backbone), [copy.deepcopy(c) for c in configs])
    found = trial.backbone_fingerprint()
    if found != meta["backbone_fingerprint"]:
        raise CheckpointError(
            f"{directory}: same architecture, but the backbone's frozen weights differ from those the adapter was "
            f"trained on (fingerprint {found[:12]} != saved {meta['backbone_fingerprint'][:12]}); load the same "
            f"pretrained checkpoint first")
    del trial
    model = cls(backbone, configs)
    model.load_state_dict(state, strict=False)
    return model
