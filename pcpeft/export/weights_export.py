"""One safetensors file per model: the merged weights, and in its metadata what rebuilds the model (the recipe's
``model`` section, the PEFT methods, whether they were merged, the class names, the preprocessing). No pickles:
:func:`load_exported` reads tensors and JSON strings only, then builds the model as ``pcpeft.load_run`` does."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from ..models.checkpoints import CheckpointError, build_budget, build_on_meta, first_line, same_kind
from ..models.registry import create_model
from ..peft import PeftModel, config_from_dict, get_peft_model
from .deploy import ExportError, deployable, methods_of, random_clouds

FORMAT = "pcpeft-model"
FORMAT_VERSION = "1"


def export_safetensors(model: PeftModel, out: str | Path, model_spec: dict, class_names: tuple[str, ...],
                       preprocessing: dict) -> dict:
    """Write ``model`` (SSF / LoRA merged) to ``out``; ``model_spec`` = the run's ``model`` section (with
    ``name``). Returns ``{"file", "methods", "merged", "tensors"}``."""
    from safetensors.torch import save_file

    net, merged = deployable(model)
    state = {k: v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": json.dumps(model_spec),
                "peft": json.dumps([c.to_dict() for c in model.peft_configs]), "merged": json.dumps(merged),
                "class_names": json.dumps(list(class_names)), "preprocessing": json.dumps(preprocessing)}
    save_file(state, str(out), metadata=metadata)
    return {"file": str(out), "methods": methods_of(model), "merged": merged, "tensors": len(state)}


#: metadata entries every exported file holds, each a JSON text of the given type
_METADATA = {"model": dict, "peft": list, "merged": bool, "class_names": list, "preprocessing": dict}


def _read_file(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file; a :class:`CheckpointError` naming it when it is not one."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from None
    return meta, state


def _parse_metadata(meta: dict[str, str], path: Path) -> dict:
    """The JSON entries of an exported file's metadata, each checked for its type."""
    if meta.get("format") != FORMAT:
        raise ExportError(f"{path}: not a model file written by tools/export.py (metadata format "
                          f"{meta.get('format')!r}, expected {FORMAT!r})")
    parsed = {}
    for key, kind in _METADATA.items():
        if key not in meta:
            raise CheckpointError(f"{path}: metadata {key!r} is missing (an exported file holds {list(_METADATA)})")
        try:
            parsed[key] = json.loads(meta[key])
        except (ValueError, RecursionError) as err:
            raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON ({str(err)[:200]})") from None
        if not isinstance(parsed[key], kind):
            raise CheckpointError(f"{path}: metadata {key!r} must be a JSON {kind.__name__}, found "
                                  f"{type(parsed[key]).__name__}")
    if not isinstance(parsed["model"].get("name"), str) or not all(isinstance(c, dict) for c in parsed["peft"]):
        raise CheckpointError(f"{path}: metadata 'model' needs a 'name' string and 'peft' a list of method configs")
    if not all(isinstance(n, str) for n in parsed["class_names"]):
        raise CheckpointError(f"{path}: metadata 'class_names' must be a list of strings")
    return parsed


def _build(parsed: dict) -> nn.Module:
    """The model the metadata describes (merged when it says so), built on the current default device."""
    spec = dict(parsed["model"])
    name = spec.pop("name")
    net: nn.Module = get_peft_model(create_model(name, **spec), [config_from_dict(c) for c in parsed["peft"]])
    return net.merge_and_unload() if parsed["merged"] else net


def _described(parsed: dict) -> nn.Module:
    """A module with the tensor names and shapes of the described model: the model itself, or when merged the
    plain backbone (merged methods fold into its weights; merging needs values, which the meta device has not)."""
    spec = dict(parsed["model"])
    name = spec.pop("name")
    backbone = create_model(name, **spec)
    plain = copy.deepcopy(backbone) if parsed["merged"] else None
    net = get_peft_model(backbone, [config_from_dict(c) for c in parsed["peft"]])
    return plain if plain is not None else net


def _check_fits(parsed: dict, state: dict[str, torch.Tensor], path: Path) -> None:
    """Build the described model on the meta device (bounded by the file's tensor count) and compare its tensor
    names, shapes and dtypes with the file's, before a model of that size is allocated."""
    try:
        shapes = {k: (v.shape, v.dtype) for k, v in build_on_meta(lambda: _described(parsed),
                                                                 build_budget(len(state))).state_dict().items()}
    except Exception as err:  # noqa: BLE001 - any failure to build from the file's description
        raise CheckpointError(f"{path}: its metadata does not describe a model pcpeft builds "
                              f"({type(err).__name__}: {first_line(err, 300)})") from None
    missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise CheckpointError(f"{path}: the tensors do not fit the model its metadata describes (missing "
                              f"{missing[:5]}, unexpected {unexpected[:5]})")
    for key, (shape, dtype) in shapes.items():
        if state[key].shape != shape or not same_kind(state[key].dtype, dtype):
            raise CheckpointError(f"{path}: the tensors do not fit the model its metadata describes ({key}: file "
                                  f"{state[key].dtype} {list(state[key].shape)}, model {dtype} {list(shape)})")


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of an :func:`export_safetensors` file, in eval mode, with ``class_names`` and ``preprocessing``
    (dict). (B, npoints, 3) normalised points -> logits (B, classes).

    The metadata is checked entry by entry, and the model it describes is first built on the meta device and
    compared with the file's tensors: a file whose metadata describes another (or a far larger) model is refused
    before anything of that size is allocated."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    meta, state = _read_file(path)
    parsed = _parse_metadata(meta, path)
    _check_fits(parsed, state, path)
    with torch.random.fork_rng(devices=[]):  # the initial values are overwritten; keep the caller's RNG as it was
        net = _build(parsed)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the tensors do not fit the model its metadata describes "
                              f"({str(err).splitlines()[0]})") from None
    net.class_names = tuple(parsed["class_names"])
    net.preprocessing = parsed["preprocessing"]
    return net.to(device).eval()


@torch.no_grad()
def verify_safetensors(model: nn.Module, path: str | Path, npoints: int, batches: tuple[int, ...] = (1, 3),
                       seed: int = 0) -> float:
    """Max |logits difference| between ``model`` and :func:`load_exported` of ``path`` on random clouds."""
    exported = load_exported(path)
    model.eval()
    worst = 0.0
    for index, batch in enumerate(batches):
        points = random_clouds(batch, npoints, seed + index)
        worst = max(worst, float((exported(points) - model(points)).abs().max()))
    return worst
