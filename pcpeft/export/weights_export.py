"""One safetensors file per model: the merged weights, and in its metadata what rebuilds the model (the recipe's
``model`` section, the PEFT methods, whether they were merged, the class names, the preprocessing). No pickles:
:func:`load_exported` reads tensors and JSON strings only, then builds the model as ``pcpeft.load_run`` does."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..models.checkpoints import CheckpointError
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


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of an :func:`export_safetensors` file, in eval mode, with ``class_names`` and ``preprocessing``
    (dict). (B, npoints, 3) normalised points -> logits (B, classes)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file")
    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT:
        raise ExportError(f"{path}: not a model file written by tools/export.py (metadata format "
                          f"{meta.get('format')!r}, expected {FORMAT!r})")
    spec = json.loads(meta["model"])
    name = spec.pop("name")
    with torch.random.fork_rng(devices=[]):  # the initial values are overwritten; keep the caller's RNG as it was
        net: nn.Module = get_peft_model(create_model(name, **spec), [config_from_dict(c)
                                                                      for c in json.loads(meta["peft"])])
    if json.loads(meta["merged"]):
        net = net.merge_and_unload()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the tensors do not fit the model its metadata describes "
                              f"({str(err).splitlines()[0]})") from None
    net.class_names = tuple(json.loads(meta["class_names"]))
    net.preprocessing = json.loads(meta["preprocessing"])
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
