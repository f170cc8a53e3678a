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

import copy
import itertools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import UserError
from ..io.safe_pickle import RefusedPickleError
from ..io.safe_torch import safe_torch_load

WRAPPING_KEYS = ("base_model", "model", "state_dict", "model_state", "model_state_dict", "module")
#: torch calls a model built from a file's description may take per tensor of the file (building takes about 9),
#: plus :data:`BUILD_OPS_BASE`: a description of a model far larger than its file is refused before it is built
BUILD_OPS_PER_TENSOR = 64
BUILD_OPS_BASE = 4096
#: the members of an .npz (JAX weights) may inflate to at most this many times the file
NPZ_EXPANSION = 16
M = TypeVar("M")


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


class BuildBudgetExceeded(Exception):
    """Building a model from a file's description took more torch calls than the file's tensors can account for."""


class _OpBudget(TorchFunctionMode):
    """Counts torch calls and raises :class:`BuildBudgetExceeded` past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.left = limit

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.left -= 1
        if self.left < 0:
            raise BuildBudgetExceeded("the description builds a model far larger than the file's tensors")
        return func(*args, **(kwargs or {}))


def build_budget(tensors: int) -> int:
    """The torch calls a build described by a file holding ``tensors`` tensors may take."""
    return BUILD_OPS_BASE + BUILD_OPS_PER_TENSOR * tensors


def build_on_meta(build: Callable[[], M], max_ops: int) -> M:
    """``build()`` with every new tensor on the meta device (shapes, no memory) and at most ``max_ops`` torch calls
    (:class:`BuildBudgetExceeded` past them): what a file describes is checked against the file's tensors before
    anything of its size is allocated."""
    with torch.device("meta"), _OpBudget(max_ops):
        return build()


def meta_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters and buffers are on the meta device (no memory)."""
    memo: dict[int, object] = {}
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        empty = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = nn.Parameter(empty, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else empty
    return copy.deepcopy(module, memo)


def same_kind(a: torch.dtype, b: torch.dtype) -> bool:
    """Whether a tensor of dtype ``a`` loads into one of dtype ``b`` as a value cast (float to float, int to int)."""
    def kind(dtype: torch.dtype) -> str:
        return "c" if dtype.is_complex else "f" if dtype.is_floating_point else "b" if dtype == torch.bool else "i"

    return kind(a) == kind(b)


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an error's message (at most ``limit`` characters), or its type's name when empty."""
    lines = str(err).splitlines()
    return lines[0][:limit] if lines else type(err).__name__


def _check_npz_sizes(path: Path) -> None:
    """Refuse an ``.npz`` whose members inflate far beyond the file, or whose array headers claim more values than
    their members hold: numpy allocates what a header claims before it reads the data."""
    import zipfile

    import numpy as np

    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if sum(m.file_size for m in members) > NPZ_EXPANSION * size + (1 << 20):
            raise CheckpointError(f"{path}: its members inflate to more than {NPZ_EXPANSION} times the file's "
                                  f"{size:,} bytes; the file is corrupt")
        for member in members:
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read(handle)
            if math.prod(shape) * dtype.itemsize > member.file_size:
                raise CheckpointError(f"{path}: array {member.filename!r} claims shape {shape} of {dtype}, more "
                                      f"than its {member.file_size:,} bytes hold; the file is corrupt")


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
            _check_npz_sizes(path)
            with np.load(path, allow_pickle=False) as arrays:
                return {k: torch.from_numpy(np.array(arrays[k])) for k in arrays.files}
        except CheckpointError:
            raise
        except Exception as err:  # noqa: BLE001 - zip / format errors of every kind
            raise CheckpointError(f"{path} is not a readable .npz file of arrays ({first_line(err)})") from None
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
                              f"({type(err).__name__}: {first_line(err)})") from None


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
        raise CheckpointError(f"{path} holds no tensors at its top level (keys: {_abbrev([str(k) for k in obj])})")
    named = [k for k in tensors if not isinstance(k, str)]
    if named:
        raise CheckpointError(f"{path}: tensor key {named[0]!r} is not a string; a state dict names its tensors")
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


def _loadable(value: torch.Tensor, own: torch.Tensor) -> bool:
    """A dense tensor in memory whose dtype casts to the model's without losing its kind (float to float...)."""
    return (value.layout == torch.strided and value.device.type in ("cpu", own.device.type) and not value.is_quantized
            and same_kind(value.dtype, own.dtype))


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
        elif not _loadable(value, own[key]):
            raise CheckpointError(f"{path}: tensor {key} is a {value.dtype} {value.layout} tensor on {value.device}; "
                                  f"the model's is a dense {own[key].dtype} tensor, which it does not load into")
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
