"""A checkpoint made runnable for pictures: the probe engine's exported graph and ONNX Runtime
session (nnprobe.probe.export / runner), with chosen intermediate values fetched as arrays.

The probe engine folds activations into statistics; pictures need the values themselves (one
input's feature maps, every input's penultimate vector, the logits of occluded copies), so this
runs the same session and keeps what it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnprobe.inspectors.activation_context import ACTIVATION_KINDS
from nnprobe.probe.jobs import JobError

if TYPE_CHECKING:
    import numpy as np
    import onnx
    import onnxruntime

    from nnprobe.probe.graph import LayerGraph, TrackedValue
    from nnprobe.probe.inputs import ProbeInputs

SUB_BATCH = 256


@dataclass
class ModelRun:
    graph: LayerGraph
    session: onnxruntime.InferenceSession
    model: onnx.ModelProto  # with the checkpoint's weights bound
    inputs: ProbeInputs
    module: Any = None  # the torch module, when the checkpoint is not ONNX
    display: str = ""
    _plain: onnxruntime.InferenceSession | None = field(default=None, repr=False)

    @property
    def output_name(self) -> str:
        return str(self.session.get_outputs()[0].name)

    def run(
        self, x: np.ndarray, names: list[str], session: onnxruntime.InferenceSession | None = None
    ) -> list[np.ndarray]:
        """`names` evaluated on every row of `x`, in sub-batches, concatenated."""
        import numpy as np

        session = session or self.session
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, len(x), SUB_BATCH):
            feed = np.ascontiguousarray(x[start : start + SUB_BATCH], dtype=np.float32)
            for i, array in enumerate(session.run(names, {self.graph.input_name: feed})):
                parts[i].append(np.asarray(array))
        return [np.concatenate(p) for p in parts]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Softmax of the model's output, through a session without the exposed values, so ONNX
        Runtime may fuse Conv+Relu (occlusion runs hundreds of copies through it)."""
        import numpy as np

        if self._plain is None:
            self._plain = plain_session(self.model)
        logits = self.run(x, [self.output_name], self._plain)[0]
        logits = logits.reshape(len(x), -1).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def value(self, layer: str | None, default: str) -> TrackedValue:
        """The tracked value named by `layer` (a module path such as `features.3`, or an ONNX value
        name); for a module with several values, its last (the activation after a conv). Without
        `layer`: `default` is "penultimate" (what the last weight layer reads) or "first-map" (the
        first activation of a feature map)."""
        values = self.graph.values
        if layer:
            hits = [v for v in values if layer in (v.module, v.name)]
            if not hits:
                hits = [v for v in values if v.module.startswith(layer + ".")]
            if not hits:
                names = sorted({v.module for v in values})
                raise JobError("NP901", f"no layer {layer!r}; layers: {', '.join(names)}")
            return hits[-1]
        if default == "penultimate":
            inner = [v for v in values if not v.is_output and v.kind in ACTIVATION_KINDS]
            inner = inner or [v for v in values if not v.is_output]
            if not inner:
                raise JobError("NP901", "the model has no hidden layer to embed")
            return inner[-1]
        maps = [v for v in values if v.op != "Gemm" and v.kind in ACTIVATION_KINDS]
        maps = maps or [v for v in values if v.kind == "conv"]
        if not maps:
            raise JobError("NP901", "the model has no feature maps")
        return maps[0]


def open_run(params: dict[str, Any]) -> ModelRun:
    """Load the job's checkpoint, build its model and inputs, export and bind it, open a session.
    Raises JobError (NP901/NP903/NP905) the way probe jobs do."""
    import torch

    from nnprobe.probe.export import ExportError, bind_weights, export_module
    from nnprobe.probe.graph import build_graph
    from nnprobe.probe.inputs import ProbeInputError, spec_from_module, spec_from_signature
    from nnprobe.probe.jobs import _inputs, _module
    from nnprobe.probe.loading import LoadError, load_checkpoint
    from nnprobe.probe.modules import module_kinds
    from nnprobe.probe.pipeline import ProbeError, ProbeOptions, _resolve_inputs

    display = params.get("display") or str(params["checkpoint"])
    try:
        checkpoint = load_checkpoint(params["checkpoint"], bool(params.get("allow_pickle")))
    except LoadError as exc:
        raise JobError(exc.code, exc.message) from None
    shape = params.get("input_shape")
    options = ProbeOptions(input_shape=tuple(shape) if shape else None)
    try:
        given = _inputs(params)
    except ProbeInputError as exc:
        raise JobError("NP901", f"cannot use the probe inputs: {exc}") from None
    try:
        if checkpoint.kind == "onnx":
            bound = checkpoint.model
            graph = build_graph(bound)
            signature = spec_from_signature(graph.input_shape, graph.input_dtype)
            inputs = _resolve_inputs(given, None, options, signature)
            return ModelRun(graph, whole_session(bound, graph), bound, inputs, display=display)
        try:
            module, spec = _module(checkpoint, params)
        except JobError as exc:
            reason = params.get("factory_reason")
            raise JobError(
                exc.code, f"{exc.message}: {reason}" if reason else exc.message
            ) from None
        inputs = _resolve_inputs(given, None, options, spec_from_module(module))
        example = torch.from_numpy(inputs.x[: min(3, inputs.count)].copy())
        arch = spec.describe() if spec is not None else ""
        exported = export_module(module, example, arch=arch)
        bound = bind_weights(exported, module)
        graph = build_graph(bound, exported.module_names, module_kinds(module))
    except ProbeError as exc:
        raise JobError("NP901", str(exc)) from None
    except ExportError as exc:
        raise JobError("NP903", f"pictures need the ONNX export, which failed: {exc}") from None
    session = whole_session(bound, graph)
    return ModelRun(graph, session, bound, inputs, module=module, display=display)


def whole_session(model: onnx.ModelProto, graph: LayerGraph) -> onnxruntime.InferenceSession:
    """A CPU session (the probe engine's options) that hands back every tracked value whole."""
    from nnprobe.probe.graph import expose

    return plain_session(expose(model, graph.output_names))


def plain_session(model: onnx.ModelProto) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    from nnprobe.probe.runner import session_options

    return ort.InferenceSession(
        model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
