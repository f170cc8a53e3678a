"""Deployment files of a trained run: ONNX (the whole classifier, grouping included) and safetensors (merged
weights + the model config in the metadata). ``tools/export.py`` is the command line."""
from .deploy import ExportError, deployable, random_clouds
from .onnx_export import export_onnx, onnx_unsupported_reason, verify_onnx
from .weights_export import export_safetensors, load_exported, verify_safetensors

__all__ = ["ExportError", "deployable", "export_onnx", "export_safetensors", "load_exported",
           "onnx_unsupported_reason", "random_clouds", "verify_onnx", "verify_safetensors"]
