//! kiln's structural check of an ONNX graph (placeholder until the exporter lands).
