"""Tests of pcpeft.export and prediction: ONNX, safetensors, classifying files."""
