"""One operator of a model as the pinned libraries' size expressions and conditions read it:
its tensors, shapes, types, builtin options and the padding TFLite-Micro computes. Shared by
the arena's scratch rules (memory/scratch.py) and the numerics conditions (library/numerics.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from .analyze import ModelReport, OperatorInfo

# TRANSPOSE_CONV's inputs are (output_shape, weights, input, bias): its data comes third
# (kernels/transpose_conv.cc, kInputTensor = 2, in every pinned version).
TRANSPOSE_CONV_INPUT = 2


@dataclass(frozen=True)
class Layer:
    """What a kernel's size expressions read from one operator."""

    index: int
    op: OperatorInfo
    report: ModelReport

    def tensor(self, position: int, outputs: bool = False):
        indices = self.op.outputs if outputs else self.op.inputs
        if position >= len(indices) or indices[position] < 0:
            return None
        return self.report.tensors[self.op.subgraph][indices[position]]

    def shape(self, position: int, outputs: bool = False) -> list[int]:
        t = self.tensor(position, outputs)
        return t.shape if t is not None else []

    def dtype(self, position: int, outputs: bool = False) -> str:
        t = self.tensor(position, outputs)
        return t.dtype if t is not None else ""

    def option(self, name: str, default=0):
        return self.op.options.get(name, default)

    def padding(self) -> tuple[int, int]:
        """Per-side (height, width) padding as TFLite-Micro computes it for CONV/DW/POOL."""
        inp, out = self.shape(0), self.shape(0, outputs=True)
        if len(inp) != 4 or len(out) != 4:
            return 0, 0
        if self.op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            f = self.shape(1)
            f_h, f_w = f[1], f[2]
        else:
            f_h, f_w = self.option("filterHeight", 1), self.option("filterWidth", 1)
        d_h, d_w = self.option("dilationHFactor", 1) or 1, self.option("dilationWFactor", 1) or 1
        s_h, s_w = self.option("strideH", 1) or 1, self.option("strideW", 1) or 1
        total_h = max(0, (out[1] - 1) * s_h + (f_h - 1) * d_h + 1 - inp[1])
        total_w = max(0, (out[2] - 1) * s_w + (f_w - 1) * d_w + 1 - inp[2])
        return total_h // 2, total_w // 2
