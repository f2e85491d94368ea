"""Receptive fields from the graph: which input pixels a unit of a feature map can see.

Along any path from the input, each spatial layer with kernel k, stride s, pad-begin p and dilation
d maps (size r, jump j, offset o) to (r + (k - 1) d j, j s, o - p j): unit i of the layer's output
sees input rows o + i j .. o + i j + r - 1 (clipped to the image). Element-wise ops keep the field;
where paths merge (a residual Add, a Concat) the widest field wins; a layer that mixes all
positions (Gemm, Flatten, global pooling) sees the whole input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

SPATIAL_OPS = frozenset({"Conv", "MaxPool", "AveragePool", "LpPool"})
GLOBAL_OPS = frozenset(
    {"Gemm", "MatMul", "Flatten", "Reshape", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}
)


@dataclass(frozen=True)
class Field:
    """Per spatial axis (height, width): field size, jump between neighbouring units, and the input
    coordinate of the first row/column unit 0 sees (negative inside the padding). `whole` marks a
    unit that sees the entire input."""

    size: tuple[int, ...] = (1, 1)
    jump: tuple[int, ...] = (1, 1)
    offset: tuple[int, ...] = (0, 0)
    whole: bool = False

    def then(
        self,
        kernel: Sequence[int],
        stride: Sequence[int] | None = None,
        pads: Sequence[int] | None = None,
        dilation: Sequence[int] | None = None,
    ) -> Field:
        """The field after one more spatial layer (pads: begin values per axis, ONNX order)."""
        n = len(kernel)
        stride = list(stride or [1] * n)
        begin = list(pads or [0] * n)[:n]
        dilation = list(dilation or [1] * n)
        axes = zip(self.size, kernel, dilation, self.jump, strict=True)
        size = tuple(r + (k - 1) * d * j for r, k, d, j in axes)
        jump = tuple(j * s for j, s in zip(self.jump, stride, strict=True))
        offset = tuple(o - p * j for o, p, j in zip(self.offset, begin, self.jump, strict=True))
        return Field(size, jump, offset, self.whole)

    def box(self, position: Sequence[int], shape: Sequence[int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), inclusive, of the unit at `position` (row, col), clipped to
        an input of `shape` (height, width)."""
        if self.whole:
            return 0, 0, shape[0] - 1, shape[1] - 1
        lo = [o + i * j for o, i, j in zip(self.offset, position, self.jump, strict=True)]
        hi = [a + r - 1 for a, r in zip(lo, self.size, strict=True)]
        top, left = max(0, lo[0]), max(0, lo[1])
        bottom, right = min(shape[0] - 1, hi[0]), min(shape[1] - 1, hi[1])
        return top, left, bottom, right


def compose(layers: Sequence[tuple[int, int, int, int]]) -> Field:
    """The field of a plain stack of square layers given as (kernel, stride, padding, dilation)."""
    current = Field()
    for k, s, p, d in layers:
        current = current.then((k, k), (s, s), (p, p), (d, d))
    return current


def _widest(fields: list[Field]) -> Field:
    if any(f.whole for f in fields):
        return Field(whole=True)
    return max(fields, key=lambda f: (f.size, f.jump))


def graph_fields(model: onnx.ModelProto) -> dict[str, Field]:
    """The receptive field of every value of a 2-D image graph (nodes are in topological order)."""
    from onnx import helper

    g = model.graph
    initializers = {t.name: t for t in g.initializer}
    fields: dict[str, Field] = {i.name: Field() for i in g.input if i.name not in initializers}
    for node in g.node:
        inputs = [fields[n] for n in node.input if n in fields]
        if not inputs:
            continue
        source = _widest(inputs)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in SPATIAL_OPS and not source.whole:
            kernel = list(attrs.get("kernel_shape") or [])
            if not kernel and len(node.input) > 1 and node.input[1] in initializers:
                kernel = list(initializers[node.input[1]].dims[2:])
            if len(kernel) != len(source.size):
                result = Field(whole=True)
            else:
                pads = list(attrs.get("pads") or [])
                result = source.then(kernel, attrs.get("strides"), pads, attrs.get("dilations"))
        elif node.op_type in GLOBAL_OPS:
            result = Field(whole=True)
        else:
            result = source
        for out in node.output:
            fields[out] = result
    return fields
