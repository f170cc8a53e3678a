"""Reading official Point-MAE / Point-BERT checkpoint files into our models, with a report of every key.

Layouts recognised (after unwrapping ``base_model`` / ``model`` / ``state_dict`` and stripping ``module.``):

=====================  ================================  =====================================================
layout                 how it is recognised              what is dropped on purpose
=====================  ================================  =====================================================
point_mae_pretrain     keys under ``MAE_encoder.``       decoder (``MAE_decoder.*``, ``mask_token``,
                                                         ``decoder_pos_embed.*``, ``increase_dim.*``); the
                                                         model's ``cls_token``/``cls_pos``/head stay as built
point_bert_pretrain    keys under ``transformer_q.``     ``transformer_k.*`` (momentum copy), ``dvae.*``, MoCo
                                                         queue, ``transformer_q.{cls_head,lm_head,mask_token}``;
                                                         the model's head stays as built
finetuned              our / the reference fine-tune     nothing: every key must match
                       keys (``cls_head_finetune.*``...)
=====================  ================================  =====================================================

The newer backbones (ACT, ReCon, PointGPT-S/B/L) add their own official layouts through their
``convert_checkpoint_state`` method; :mod:`pcpeft.models.layouts` lists them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from ..errors import UserError
from ..io.safe_pickle import RefusedPickleError
from ..io.safe_torch import safe_torch_load

WRAPPING_KEYS = ("base_model", "model", "state_dict", "model_state", "model_state_dict", "module")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file cannot be read, has an unknown layout, or (strict) does not fit the model."""


@dataclass
class LoadReport:
    """What :func:`load_checkpoint` did with every key of the file and of the model."""

    path: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatches: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    expected_absent: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mis-shaped beyond the layout's expected absences."""
        return not (self.missing or self.unexpected or self.shape_mismatches)

    def problems(self) -> list[str]:
        lines = [f"missing from the file: {k}" for k in self.missing]
        lines += [f"in the file but not in the model: {k}" for k in self.unexpected]
        lines += [f"shape mismatch for {k}: file {list(a)} vs model {list(b)}" for k, a, b in self.shape_mismatches]
        return lines

    def __str__(self) -> str:
        out = [f"checkpoint {self.path} (layout: {self.layout}): {len(self.loaded)} tensors loaded"]
        for reason, keys in self.expected_absent.items():
            out.append(f"  expected, {reason}: {len(keys)} keys ({_abbrev(keys)})")
        out += [f"  PROBLEM {line}" for line in self.problems()]
        if self.ok:
            out.append("  every key accounted for")
        return "\n".join(out)


def _abbrev(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit})" if len(keys) > limit else "")


def read_checkpoint_file(path: str | os.PathLike, weights_only: bool = True) -> Mapping:
    """Load a ``.pth``/``.pt``/``.bin`` (torch pickle), ``.safetensors`` or ``.npz`` file to a mapping, naming the
    file on error.

    Torch files are read with the weights-only unpickler (tensors, containers, numbers and numpy values; see
    :mod:`pcpeft.io.safe_torch`): a file that asks for anything else is refused and nothing from it runs.
    ``weights_only=False`` is a Python-API opt-in for your *own* trusted files only; no tool exposes it, because no
    official checkpoint format needs it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".npz":  # original JAX ViT weights
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as arrays:
                return {k: torch.from_numpy(np.array(arrays[k])) for k in arrays.files}
        except Exception as err:  # noqa: BLE001 - zip / format errors of every kind
            raise CheckpointError(f"{path} is not a readable .npz file of arrays ({err})") from None
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from None
    try:
        if weights_only:
            return safe_torch_load(path)
        return torch.load(path, map_location="cpu", weights_only=False)
    except RefusedPickleError as err:
        raise CheckpointError(str(err)) from None
    except Exception as err:  # torch.load fails in many ways on foreign bytes (IndexError, EOFError, ...)
        raise CheckpointError(f"{path} is not a PyTorch checkpoint, or it is truncated or corrupt "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None


def extract_state_dict(obj: Mapping, path: str = "<memory>") -> dict[str, torch.Tensor]:
    """Unwrap ``base_model``/``model``/``state_dict`` and strip ``module.`` / ``base_model.`` prefixes."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} does not hold a dict of tensors (found {type(obj).__name__})")
    for _ in range(3):  # nested wrappers, e.g. {"model": {"state_dict": ...}}
        inner = next((obj[k] for k in WRAPPING_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors at its top level (keys: {_abbrev(list(obj))})")
    out = {}
    for key, value in tensors.items():
        key = key.replace("module.", "")
        if key.startswith("base_model."):
            key = key[len("base_model."):]
        out[key] = value
    return out


def _map_point_mae_pretrain(state: dict[str, torch.Tensor]) -> tuple[dict, dict[str, list[str]]]:
    mapped, dropped = {}, []
    for key, value in state.items():
        if key.startswith("MAE_encoder."):
            mapped[key[len("MAE_encoder."):]] = value
        else:
            dropped.append(key)
    return mapped, {"pre-training decoder and mask token, unused when fine-tuning": dropped}


def _map_point_bert_pretrain(state: dict[str, torch.Tensor]) -> tuple[dict, dict[str, list[str]]]:
    mapped, dropped = {}, []
    skip_inner = ("cls_head.", "lm_head.", "mask_token")
    for key, value in state.items():
        inner = key[len("transformer_q."):] if key.startswith("transformer_q.") else None
        if inner is None or inner.startswith(skip_inner):
            dropped.append(key)
        else:
            mapped[inner] = value
    return mapped, {"pre-training only (momentum encoder, dVAE, queue, pre-training heads, mask token)": dropped}


def map_reference_keys(state: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor], dict[str, list[str]]]:
    """Detect the layout and map reference keys to ours. Returns (layout, mapped state, dropped keys by reason)."""
    if any(k.startswith("MAE_encoder.") for k in state):
        return ("point_mae_pretrain", *_map_point_mae_pretrain(state))
    if any(k.startswith("transformer_q.") for k in state):
        return ("point_bert_pretrain", *_map_point_bert_pretrain(state))
    return "finetuned", dict(state), {}


#: Model keys a layout does not provide by design, with the reason printed in the report.
_ABSENT_BY_DESIGN = {
    "point_mae_pretrain": {
        "cls_token": "created at fine-tuning (Point-MAE pre-training has no cls token)",
        "cls_pos": "created at fine-tuning (Point-MAE pre-training has no cls token)",
        "cls_head_finetune.": "classification head, trained from scratch when fine-tuning",
    },
    "point_bert_pretrain": {"cls_head_finetune.": "classification head, trained from scratch when fine-tuning"},
}


def register_absent_by_design(layout: str, reasons: Mapping[str, str]) -> None:
    """Declare the model keys (exact names, or prefixes ending in ``.``) that ``layout`` lacks on purpose, with
    the reason the report prints (used by the backbones' ``convert_checkpoint_state`` layouts)."""
    _ABSENT_BY_DESIGN.setdefault(layout, {}).update(reasons)


def _reason_absent(layout: str, key: str) -> str | None:
    for prefix, reason in _ABSENT_BY_DESIGN.get(layout, {}).items():
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return reason
    return None


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], layout: str, path: str,
                    dropped: dict[str, list[str]] | None = None, strict: bool = False) -> LoadReport:
    """Copy matching tensors of ``state`` (already in our key names) into ``model`` and report on every key."""
    report = LoadReport(path=path, layout=layout)
    for reason, keys in (dropped or {}).items():
        if keys:
            report.expected_absent[reason] = sorted(keys)
    own = model.state_dict()
    to_load = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.shape_mismatches.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            to_load[key] = value
    for key in own:
        if key in state:
            continue
        reason = _reason_absent(layout, key)
        if reason is None:
            report.missing.append(key)
        else:
            report.expected_absent.setdefault(reason, []).append(key)
    if not to_load and state:
        raise CheckpointError(
            f"{path}: unknown checkpoint layout - none of its {len(state)} keys matches the model "
            f"(file keys: {_abbrev(sorted(state))}; model keys: {_abbrev(list(own))})"
        )
    if strict and not report.ok:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}:\n  "
                              + "\n  ".join(report.problems()))
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    return report


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = False,
                    weights_only: bool = True) -> LoadReport:
    """Load an official or pcpeft checkpoint into ``model`` and return a :class:`LoadReport`.

    Args:
        model: a backbone from :func:`pcpeft.create_model`, or a PEFT model: a fine-tuned file of one of its
            methods' official code (DAPT, IDPT, PPT, PointGST) fills backbone and method; any other file
            loads into its base model.
        path: ``.pth``/``.pt``/``.bin``/``.safetensors`` file in any layout listed in this module's docstring, or
            for the ViT a timm file or an original JAX ``.npz``.
        strict: raise :class:`CheckpointError` listing every missing, unexpected or mis-shaped key.
        weights_only: read tensors only (the default; see :func:`read_checkpoint_file`).
    """
    return load_checkpoint_object(model, read_checkpoint_file(path, weights_only=weights_only), path, strict)


def load_checkpoint_object(model: nn.Module, raw: Mapping, path: str | os.PathLike = "<memory>",
                           strict: bool = False) -> LoadReport:
    """:func:`load_checkpoint` for a file already read (``read_checkpoint_file``); ``path`` names it in messages."""
    state = extract_state_dict(raw, str(path))
    official = getattr(model, "map_official_state", None)  # a PeftModel: a method's own fine-tuned file
    found = official(state) if official is not None else None
    if found is not None:  # backbone and method tensors, keys mapped to the PeftModel's own
        layout, mapped, dropped = found
        return load_state_into(model, mapped, layout, str(path), dropped, strict)
    target = getattr(model, "base_model", model)
    convert = getattr(target, "convert_checkpoint_state", None)  # the ViT: JAX names, pos_embed resizing
    layout, mapped, dropped = convert(state) if convert else map_reference_keys(state)
    return load_state_into(target, mapped, layout, str(path), dropped, strict)
