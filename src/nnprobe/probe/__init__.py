"""Everything that touches torch, onnx, onnxruntime or numpy, kept out of `nnprobe.core` and of
`nnprobe.inspectors` at import time so the static path and the language server start without them.
Import submodules lazily, inside the functions that need them."""
