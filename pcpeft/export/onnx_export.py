"""ONNX export of a whole point classifier: normalised points (B, npoints, 3) -> logits (B, classes).

The grouping is part of the graph: the backbone's grouper is replaced by :class:`.graph_ops.GraphGrouper` (FPS
unrolled over the centres, kNN by top-k of squared distances, the same arithmetic as :mod:`pcpeft.ops`), SSF and
LoRA are merged first, SMoA runs its ``dense`` dispatch (no host synchronisation). The batch dimension is dynamic.
The file is checked with ``onnx.checker`` and by running it in onnxruntime; its metadata holds the class names
and ``npoints``. Exported with PyTorch's TorchScript-based exporter (opset 17), which unrolls Python loops.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..ops.grouping import PointGrouper
from ..peft import PeftModel
from .deploy import ExportError, deployable, methods_of, random_clouds
from .graph_ops import GraphGrouper

OPSET = 17
#: methods whose forward has no ONNX form, and why
ONNX_UNSUPPORTED = {
    "pointgst": "its graph Fourier basis is an eigendecomposition (torch.linalg.eigh) of each cloud's centre graph, "
                "and ONNX has no eigendecomposition operator",
    "gaprompt": "its shift network and second-level grouping run farthest point sampling, kNN and sorts inside the "
                "method, which the exporter has no graph form for (only the backbone's own grouper has one)",
}


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise ExportError(f"ONNX export needs the packages onnx and onnxruntime ({err}): pip install onnx "
                          f"onnxruntime") from None


def _backbone(model: nn.Module) -> nn.Module:
    return model.base_model if isinstance(model, PeftModel) else model


def onnx_unsupported_reason(model: PeftModel) -> str | None:
    """Why ``model`` cannot be exported to ONNX (naming the method or the layer), or None when it can."""
    for method in methods_of(model):
        if method in ONNX_UNSUPPORTED:
            return f"the method {method!r} cannot be exported: {ONNX_UNSUPPORTED[method]}"
    grouper = getattr(_backbone(model), "group_divider", None)
    if type(grouper) is not PointGrouper:
        return (f"the backbone {type(_backbone(model)).__name__} groups its points with "
                f"{type(grouper).__name__}, which has no graph form here (only FPS + kNN grouping, PointGrouper)")
    return None


def graph_ready(model: nn.Module) -> nn.Module:
    """``model`` (a deployable copy) with graph-friendly grouping and SMoA dispatch, in place; returns it."""
    backbone = _backbone(model)
    old = backbone.group_divider
    new = GraphGrouper.like(old)
    new._forward_hooks = old._forward_hooks  # methods that read the centres (hooks on the grouper) keep them
    backbone.group_divider = new
    for module in model.modules():
        if hasattr(module, "dispatch") and hasattr(module, "route"):  # SMoA: every mode computes the same function
            module.dispatch = "dense"
    return model


def export_onnx(model: PeftModel, out: str | Path, npoints: int, class_names: tuple[str, ...] = ()) -> dict:
    """Write ``model`` to ``out`` as ONNX (points (B, npoints, 3) -> logits (B, C)); returns what was done:
    ``{"file", "methods", "merged", "opset"}``. Raises :class:`ExportError` naming the method that cannot go."""
    _require_onnx()
    import onnx
    import onnxruntime

    out = Path(out)
    methods = methods_of(model)
    reason = onnx_unsupported_reason(model)
    if reason:
        raise ExportError(f"cannot export {methods} to ONNX: {reason}")
    net, merged = deployable(model)
    graph_ready(net)
    example = random_clouds(2, npoints)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about Python values fixed in the graph
            torch.onnx.export(net, (example,), str(out), input_names=["points"], output_names=["logits"],
                              dynamic_axes={"points": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
    except Exception as err:  # noqa: BLE001 - the exporter's own errors; --debug shows the chain
        raise ExportError(f"cannot export {methods} to ONNX: the exporter failed on this model "
                          f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from err
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    for key, value in (("class_names", json.dumps(list(class_names))), ("npoints", str(npoints)),
                       ("methods", json.dumps(methods)), ("merged", json.dumps(merged))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(out))
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    session.run(None, {"points": example.numpy()})  # loads and runs
    return {"file": str(out), "methods": methods, "merged": merged, "opset": OPSET}


@torch.no_grad()
def verify_onnx(model: nn.Module, path: str | Path, npoints: int, batches: tuple[int, ...] = (1, 3),
                seed: int = 0) -> float:
    """Max |logits difference| between ``model`` (PyTorch) and the ONNX file in onnxruntime, over random
    normalised clouds of each batch size in ``batches``."""
    _require_onnx()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model.eval()
    worst = 0.0
    for index, batch in enumerate(batches):
        points = random_clouds(batch, npoints, seed + index)
        exported = session.run(None, {"points": points.numpy()})[0]
        worst = max(worst, float(np.abs(exported - model(points).float().numpy()).max()))
    return worst
