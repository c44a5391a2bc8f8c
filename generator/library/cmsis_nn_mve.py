"""CMSIS-NN v7.0.0's Helium arm_convolve_1_x_n_s8: how it splits a row of outputs into a left
padded edge, an unpadded middle and a right padded edge. One source for the arena's scratch rule
(memory/scratch.py `cmsis_conv_1xn_s8_mve`, the buffer it asks) and the numerics conditions
(numerics.py `_mve_1xn`, where the split fails or computes wrong values).

From ARM-software/CMSIS-NN@v7.0.0: Source/ConvolutionFunctions/arm_convolve_1_x_n_s8.c:80-90,99 and
arm_convolve_get_buffer_sizes_s8.c:74-81, which compute the split alike.
"""

from __future__ import annotations

from dataclasses import dataclass


def _c_div(a: int, b: int) -> int:
    """C integer division (toward zero)."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


@dataclass(frozen=True)
class OneByNEdges:
    out_w: int  # output columns in the row
    total_pad: int  # (out_w - 1) * stride + kw - in_w: negative when VALID leaves input columns over
    asym: int  # total_pad's C remainder mod 2: the right edge's extra padding column
    left: int  # output columns computed with left padding
    no_pad: int  # output columns computed without padding
    right: int  # output columns computed with right padding

    @property
    def complete(self) -> bool:
        """The three parts cover the output row (else the kernel falls back to the generic one)."""
        return self.left + self.no_pad + self.right == self.out_w


def one_by_n_edges(in_w: int, f_w: int, out_w: int, pad_w: int, s_w: int) -> OneByNEdges:
    """The split arm_convolve_1_x_n_s8 makes of an output row (arm_convolve_1_x_n_s8.c:80-90)."""
    total_pad = (out_w - 1) * s_w + f_w - in_w
    asym = total_pad - 2 * _c_div(total_pad, 2)  # C's %
    right = max(1, _c_div(pad_w + asym + s_w - 1, s_w)) if pad_w + asym != 0 else 0
    left = max(1, _c_div(pad_w + s_w - 1, s_w)) if pad_w != 0 else 0
    no_pad = max(out_w - (right + left), 0)
    return OneByNEdges(out_w=out_w, total_pad=total_pad, asym=asym, left=left, no_pad=no_pad, right=right)
